//! Maps the host's SSH outcomes to obshell's `connection_result`.

use crate::credhost::plugin::ssh::{LoginResult, Outcome};
use crate::exports::credhost::plugin::verification::{Detail, Reason, Target};

pub fn from_login(result: LoginResult) -> Detail {
    let target = Target {
        ip: result.target.ip,
        port: result.target.port,
    };
    let reason = match result.outcome {
        Outcome::Success => {
            return Detail {
                target,
                connection_result: "SUCCESS".into(),
                reason: Reason::Ok,
                message: String::new(),
            };
        }
        Outcome::AuthFailed => Reason::AuthFailed,
        Outcome::Refused => Reason::Refused,
        Outcome::Unreachable => Reason::Unreachable,
        Outcome::Timeout => Reason::Timeout,
        Outcome::ProtocolError => Reason::ProtocolError,
        Outcome::NotGranted => Reason::NotGranted,
    };
    let address = if target.ip.contains(':') {
        format!("[{}]:{}", target.ip, target.port)
    } else {
        format!("{}:{}", target.ip, target.port)
    };
    Detail {
        message: format!(
            "SSH validation failed: SSH connection failed to {address}: {}",
            result.message
        ),
        target,
        // obshell clients know only SUCCESS and CONNECT_FAILED; `reason` says more.
        connection_result: "CONNECT_FAILED".into(),
        reason,
    }
}

/// A credential whose stored form cannot be used: one failed detail, as obshell.
pub fn unreadable(why: &str) -> Detail {
    Detail {
        target: Target {
            ip: String::new(),
            port: 0,
        },
        connection_result: "CONNECT_FAILED".into(),
        reason: Reason::Other,
        message: format!("failed to deserialize secret: {why}"),
    }
}
