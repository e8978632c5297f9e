//! Budgets for work that holds a scarce resource for long (plugin
//! instances, SSH logins): a fixed number of slots, a bounded wait for one,
//! and a cap on how many one client may hold, so a client that floods the
//! server with slow work gets its own requests refused, not everyone's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Whom a piece of work is done for: an API token's id, or else the client
/// address. Work of one client is capped together.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Client(Arc<str>);

impl Client {
    pub fn new(key: impl Into<Arc<str>>) -> Self {
        Self(key.into())
    }

    /// Work the server does for itself (loading plugins, the rewrap).
    pub fn server() -> Self {
        Self::new("server")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Client {
    fn default() -> Self {
        Self::server()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Busy {
    #[error("no {what} became free within {} ms", waited.as_millis())]
    Timeout {
        what: &'static str,
        waited: Duration,
    },
}

/// Client semaphores are dropped once this many exist and some are idle.
const PRUNE_AT: usize = 1024;

pub struct Budget {
    /// The metric label: `verify`, `quick`, `ssh`.
    pool: &'static str,
    what: &'static str,
    slots: Arc<Semaphore>,
    per_client: usize,
    wait: Duration,
    clients: Mutex<HashMap<Client, Share>>,
    /// Registered once: a slot is taken on every plugin call.
    waits: metrics::Histogram,
}

/// What one client may hold of a budget (`held`: `per_client` permits),
/// and its turn in the line for slots (one permit): however many requests
/// a client has waiting, one of them at a time waits for a slot, so the
/// others' requests take turns with its own instead of waiting behind all
/// of them.
#[derive(Clone)]
struct Share {
    held: Arc<Semaphore>,
    turn: Arc<Semaphore>,
}

/// One slot, and the client's share it counts against; both go back on drop.
pub struct Slot {
    _slot: OwnedSemaphorePermit,
    _share: OwnedSemaphorePermit,
}

impl Budget {
    /// `slots` in all, at most `per_client` of them held by one client, and
    /// a wait of at most `wait` for one.
    pub fn new(
        pool: &'static str,
        what: &'static str,
        slots: usize,
        per_client: usize,
        wait: Duration,
    ) -> Self {
        let slots = slots.max(1);
        Self {
            pool,
            what,
            slots: Arc::new(Semaphore::new(slots)),
            per_client: per_client.clamp(1, slots),
            wait,
            clients: Mutex::new(HashMap::new()),
            waits: metrics::histogram!("credhost_pool_wait_seconds", "pool" => pool),
        }
    }

    pub fn capacity(&self) -> usize {
        self.slots.available_permits()
    }

    /// Waits for the client's share first, so a client past its share never
    /// queues for slots ahead of others.
    pub async fn acquire(&self, client: &Client) -> Result<Slot, Busy> {
        self.acquire_within(client, self.wait).await
    }

    /// As `acquire`, waiting at most `wait`.
    pub async fn acquire_within(&self, client: &Client, wait: Duration) -> Result<Slot, Busy> {
        let Share { held, turn } = self.share_of(client);
        // Most of the time both are free: take them without a timer.
        if let Ok(share) = held.clone().try_acquire_owned()
            && let Ok(slot) = self.slots.clone().try_acquire_owned()
        {
            self.waits.record(0.0);
            return Ok(Slot {
                _slot: slot,
                _share: share,
            });
        }
        let limit = wait;
        let acquired = async {
            let share = held.acquire_owned().await.expect("never closed");
            let _turn = turn.acquire_owned().await.expect("never closed");
            let slot = self
                .slots
                .clone()
                .acquire_owned()
                .await
                .expect("never closed");
            Slot {
                _slot: slot,
                _share: share,
            }
        };
        let started = std::time::Instant::now();
        let slot = tokio::time::timeout(limit, acquired).await;
        self.waits.record(started.elapsed().as_secs_f64());
        slot.map_err(|_| {
            metrics::counter!("credhost_pool_rejections_total", "pool" => self.pool).increment(1);
            Busy::Timeout {
                what: self.what,
                waited: limit,
            }
        })
    }

    fn share_of(&self, client: &Client) -> Share {
        let mut clients = self.clients.lock().expect("budget lock");
        if clients.len() >= PRUNE_AT {
            // Idle: no slot held and no one waiting (only the map holds it).
            clients.retain(|_, share| Arc::strong_count(&share.held) > 1);
        }
        clients
            .entry(client.clone())
            .or_insert_with(|| Share {
                held: Arc::new(Semaphore::new(self.per_client)),
                turn: Arc::new(Semaphore::new(1)),
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_client_cannot_take_every_slot() {
        let budget = Budget::new("test", "slot", 4, 2, Duration::from_millis(50));
        let greedy = Client::new("greedy");
        let a = budget.acquire(&greedy).await.unwrap();
        let _b = budget.acquire(&greedy).await.unwrap();
        assert!(matches!(
            budget.acquire(&greedy).await,
            Err(Busy::Timeout { .. })
        ));
        // Another client still gets in, at once.
        let other = Client::new("other");
        let _c = budget.acquire(&other).await.unwrap();
        let _d = budget.acquire(&other).await.unwrap();
        // Every slot is held now: waits end, they do not hang.
        assert!(budget.acquire(&Client::new("third")).await.is_err());
        drop(a);
        assert!(budget.acquire(&Client::new("third")).await.is_ok());
    }

    /// A client with many requests waiting for slots does not keep
    /// another's behind all of them: the two take turns.
    #[tokio::test]
    async fn clients_waiting_for_slots_take_turns() {
        // Four slots, three per client: one client holds three, another
        // (below its share) one, and has two more requests waiting.
        let budget = Arc::new(Budget::new("test", "slot", 4, 3, Duration::from_secs(10)));
        let (first, second) = (Client::new("first"), Client::new("second"));
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(budget.acquire(&first).await.unwrap());
        }
        let _second_holds = budget.acquire(&second).await.unwrap();
        let waiting = |client: Client| {
            let budget = budget.clone();
            tokio::spawn(async move { budget.acquire(&client).await.unwrap() })
        };
        let queued: Vec<_> = (0..2).map(|_| waiting(second.clone())).collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let victim = waiting(Client::new("victim"));
        tokio::time::sleep(Duration::from_millis(20)).await;
        // Two slots come free: one of the waiting requests of the second
        // client gets the first, the victim the second.
        held.truncate(1);
        let victim = tokio::time::timeout(Duration::from_secs(1), victim).await;
        assert!(
            victim.is_ok(),
            "the victim waited behind every request of the second client"
        );
        drop(queued);
    }

    #[tokio::test]
    async fn idle_clients_are_forgotten() {
        let budget = Budget::new("test", "slot", 2, 1, Duration::from_millis(10));
        for i in 0..PRUNE_AT + 10 {
            drop(budget.acquire(&Client::new(i.to_string())).await.unwrap());
        }
        assert!(budget.clients.lock().unwrap().len() <= PRUNE_AT);
    }
}
