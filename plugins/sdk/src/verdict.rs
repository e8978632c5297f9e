//! What `verify-target` answers.

use alloc::string::String;

use crate::{Reason, Verdict};

/// The target accepted the credential.
pub fn ok() -> Verdict {
    Verdict {
        reason: Reason::Ok,
        message: String::new(),
    }
}

/// The target refused it, or could not be asked; `message` is shown to the
/// API client and must hold no secret.
pub fn failed(reason: Reason, message: impl Into<String>) -> Verdict {
    Verdict {
        reason,
        message: message.into(),
    }
}
