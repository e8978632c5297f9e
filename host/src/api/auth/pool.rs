//! RSA decryption off the async workers. A header's blocks are decrypted by
//! a few threads of their own, one block at a time and round-robin between
//! headers, so a header of many blocks cannot hold up one of few; headers
//! from addresses that failed lately wait behind the others. The queue is
//! bounded: when it is full the request is answered "busy" at once.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};

use tokio::sync::oneshot;
use zeroize::Zeroizing;

use crate::keys::TransportKey;

/// The queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// Decrypted blocks, joined, and where each block's plaintext ends.
#[derive(Default)]
pub struct Plain {
    pub bytes: Zeroizing<Vec<u8>>,
    pub ends: Vec<usize>,
}

struct Job {
    blocks: Vec<u8>,
    next: usize,
    plain: Plain,
    suspect: bool,
    done: oneshot::Sender<Plain>,
}

#[derive(Default)]
struct Queues {
    trusted: VecDeque<Job>,
    suspect: VecDeque<Job>,
}

impl Queues {
    fn len(&self) -> usize {
        self.trusted.len() + self.suspect.len()
    }

    fn push(&mut self, job: Job) {
        if job.suspect {
            self.suspect.push_back(job);
        } else {
            self.trusted.push_back(job);
        }
    }

    fn pop(&mut self) -> Option<Job> {
        self.trusted
            .pop_front()
            .or_else(|| self.suspect.pop_front())
    }
}

struct Shared {
    key: Arc<TransportKey>,
    queues: Mutex<Queues>,
    ready: Condvar,
    capacity: usize,
}

pub struct RsaPool {
    shared: Arc<Shared>,
}

/// Threads at nice 5: under contention they leave the async workers, which
/// answer everything else, most of the CPU, and with nothing else to do
/// they have all of it.
const NICE: i32 = 5;

impl RsaPool {
    /// `threads` decrypting threads; at most `capacity` headers waiting.
    pub fn new(key: Arc<TransportKey>, threads: usize, capacity: usize) -> Self {
        let shared = Arc::new(Shared {
            key,
            queues: Mutex::new(Queues::default()),
            ready: Condvar::new(),
            capacity,
        });
        for n in 0..threads.max(1) {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("credhost-rsa-{n}"))
                .spawn(move || work(&shared))
                .expect("cannot start an RSA thread");
        }
        Self { shared }
    }

    pub fn key(&self) -> &TransportKey {
        &self.shared.key
    }

    /// Queues whole blocks for decryption; the answer is their joined
    /// plaintexts.
    pub fn decrypt(
        &self,
        blocks: Vec<u8>,
        suspect: bool,
    ) -> Result<oneshot::Receiver<Plain>, Busy> {
        let (done, answer) = oneshot::channel();
        let mut queues = self.shared.queues.lock().expect("RSA queue lock");
        if queues.len() >= self.shared.capacity {
            return Err(Busy);
        }
        queues.push(Job {
            plain: Plain {
                bytes: Zeroizing::new(Vec::with_capacity(blocks.len())),
                ends: Vec::new(),
            },
            blocks,
            next: 0,
            suspect,
            done,
        });
        drop(queues);
        self.shared.ready.notify_one();
        Ok(answer)
    }
}

fn work(shared: &Shared) {
    crate::priority::lower_current_thread(NICE);
    let block_len = shared.key.block_len();
    loop {
        let mut job = {
            let mut queues = shared.queues.lock().expect("RSA queue lock");
            loop {
                if let Some(job) = queues.pop() {
                    break job;
                }
                queues = shared.ready.wait(queues).expect("RSA queue lock");
            }
        };
        // Nobody waits for it any more (the client went away).
        if job.done.is_closed() {
            continue;
        }
        let block = &job.blocks[job.next..job.next + block_len];
        job.plain
            .bytes
            .extend_from_slice(&shared.key.decrypt_block(block));
        job.plain.ends.push(job.plain.bytes.len());
        job.next += block_len;
        if job.next >= job.blocks.len() {
            let plain = std::mem::take(&mut job.plain);
            let _ = job.done.send(plain);
        } else {
            shared.queues.lock().expect("RSA queue lock").push(job);
        }
    }
}
