//! Checking audit files: every line must carry the MAC the chain gives it
//! and the next sequence number, and each file must continue the one
//! before it. The files may be given in any order; they are put in the
//! order of their first record.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use super::chain::{Broken, Keys};

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub files: usize,
    pub records: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    /// Whether the set starts where the log began. If not, the files
    /// before it are not among those given (rotated away, or removed):
    /// what they held cannot be checked.
    pub from_the_start: bool,
}

#[derive(Debug, Clone, Serialize, thiserror::Error)]
#[error("{}:{line}: {what}", file.display())]
pub struct Failure {
    pub file: PathBuf,
    /// 1-based; 0 when the file as a whole is at fault.
    pub line: usize,
    pub what: String,
}

fn fail(file: &Path, line: usize, what: impl Into<String>) -> Failure {
    Failure {
        file: file.to_path_buf(),
        line,
        what: what.into(),
    }
}

struct File {
    path: PathBuf,
    text: String,
    first_seq: u64,
}

fn seq_of(line: &str) -> Option<u64> {
    let (body, _) = super::chain::split(line)?;
    serde_json::from_str::<Value>(&body).ok()?["seq"].as_u64()
}

fn read(path: &Path) -> Result<File, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| fail(path, 0, e.to_string()))?;
    let first = text.lines().next().ok_or_else(|| fail(path, 0, "empty"))?;
    let first_seq = seq_of(first)
        .ok_or_else(|| fail(path, 1, "the first line is not a sealed audit record"))?;
    Ok(File {
        path: path.to_path_buf(),
        text,
        first_seq,
    })
}

pub fn verify(paths: &[PathBuf], keys: &Keys) -> Result<Report, Failure> {
    let mut files = paths
        .iter()
        .map(|p| read(p))
        .collect::<Result<Vec<_>, _>>()?;
    files.sort_by_key(|f| f.first_seq);
    let mut prev: Option<String> = None;
    let mut next_seq: Option<u64> = None;
    let mut records = 0;
    let mut from_the_start = false;
    for file in &files {
        for (i, line) in file.text.lines().enumerate() {
            let at = i + 1;
            let (body, _) = super::chain::split(line)
                .ok_or_else(|| fail(&file.path, at, "the line carries no MAC"))?;
            let record: Value = serde_json::from_str(&body)
                .map_err(|_| fail(&file.path, at, "the line is not a JSON record"))?;
            let seq = record["seq"]
                .as_u64()
                .ok_or_else(|| fail(&file.path, at, "the record has no sequence number"))?;
            if let Some(expected) = next_seq
                && seq != expected
            {
                let what = if seq > expected && at == 1 {
                    format!(
                        "records {expected} to {} are missing (a file is missing?)",
                        seq - 1
                    )
                } else {
                    format!(
                        "sequence {seq} where {expected} was due: a line was removed, added or moved"
                    )
                };
                return Err(fail(&file.path, at, what));
            }
            // The first file of the set vouches for where its chain starts.
            let after = match &prev {
                Some(mac) => mac.clone(),
                None if record["type"] == "file" => {
                    let after = record["prev_mac"].as_str().unwrap_or_default();
                    from_the_start = after.is_empty();
                    after.to_string()
                }
                None => {
                    return Err(fail(
                        &file.path,
                        at,
                        "the set does not start at the beginning of an audit file",
                    ));
                }
            };
            let mac = keys.check(&after, line).map_err(|broken| {
                fail(
                    &file.path,
                    at,
                    match broken {
                        Broken::Unsealed => "the line carries no MAC".to_string(),
                        Broken::Mac => format!(
                            "seq {seq}: the MAC does not match: this line was altered, or the one \
                             before it was removed, added or moved"
                        ),
                    },
                )
            })?;
            prev = Some(mac);
            next_seq = Some(seq + 1);
            records += 1;
        }
    }
    Ok(Report {
        files: files.len(),
        records,
        first_seq: files.first().map_or(0, |f| f.first_seq),
        last_seq: next_seq.map_or(0, |n| n - 1),
        from_the_start,
    })
}
