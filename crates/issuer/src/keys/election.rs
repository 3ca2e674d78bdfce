//! Leadership and change notification on PostgreSQL: one replica holds
//! the leader advisory lock on a long-lived connection and plans rotation;
//! every replica `LISTEN`s on [`CHANNEL`] on a thread of its own.

use std::{
    sync::{Mutex, Weak},
    time::Duration,
};

use tokio::sync::Notify;

use super::postgres::{CHANNEL, LEADER_LOCK, PgUrl, Slot, connect};
use crate::{Error, keys::coordination::Coordination};

/// The rotation leader election and the change notifications of replicas
/// sharing one database.
#[derive(Debug)]
pub struct PgCoordination {
    url: PgUrl,
    leader: Slot,
    /// Whether the leader connection holds the lock.
    held: Mutex<bool>,
}

impl PgCoordination {
    /// Elects and listens on the database at `url`; connects on first use.
    pub fn new(url: &PgUrl) -> Self {
        PgCoordination { url: url.clone(), leader: Slot::new(url), held: Mutex::new(false) }
    }
}

impl Coordination for PgCoordination {
    fn try_lead(&self) -> Result<bool, Error> {
        let mut held = self.held.lock().map_err(|_| Error::Store("leader slot poisoned".into()))?;
        // Holding: prove the connection (and so the lock) is still there;
        // `with_existing` never reconnects, which would lose the lock
        // unseen. Not holding: try to take it; a session lock is
        // re-entrant, so it is taken once and then only checked.
        let result = if *held {
            self.leader.with_existing("checking the leader connection", |c| c.simple_query("SELECT 1").map(|_| true))
        } else {
            self.leader.with("taking the leader lock", |c| {
                Ok(c.query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK])?.get::<_, bool>(0))
            })
        };
        *held = matches!(result, Ok(true));
        result
    }

    fn elects_leader(&self) -> bool {
        true
    }

    fn watch(&self, wake: Weak<Notify>) {
        let url = self.url.clone();
        let spawned = std::thread::Builder::new().name("jwks-pg-listen".into()).spawn(move || {
            while wake.strong_count() > 0 {
                match listen(&url, &wake) {
                    Ok(()) => return,
                    // Lost after it worked: say so once; retries stay quiet.
                    Err((true, e)) => {
                        tracing::warn!(location = %url.location(), error = %e, "lost the key change notifications; polling until they return");
                    }
                    Err((false, e)) => {
                        tracing::debug!(location = %url.location(), error = %e, "cannot listen for key changes");
                    }
                }
                crate::clock::pause(Duration::from_secs(1));
            }
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the key change listener; polling only");
        }
    }
}

/// Listens on [`CHANNEL`] and notifies `wake` on every change, and
/// once on connecting for what was missed meanwhile. Returns `Ok` when
/// nobody waits any more, `Err((listened, why))` when the connection is lost.
fn listen(url: &PgUrl, wake: &Weak<Notify>) -> Result<(), (bool, String)> {
    let mut client = connect(url).map_err(|e| (false, e.to_string()))?;
    client.batch_execute(&format!("LISTEN {}", CHANNEL)).map_err(|e| (false, e.to_string()))?;
    match wake.upgrade() {
        Some(w) => w.notify_one(),
        None => return Ok(()),
    }
    loop {
        // Wakes at least once a second to notice that nobody waits.
        {
            let mut notifications = client.notifications();
            let mut iter = notifications.timeout_iter(Duration::from_secs(1));
            loop {
                let next = fallible_next(&mut iter).map_err(|e| (true, e))?;
                let Some(w) = wake.upgrade() else { return Ok(()) };
                match next {
                    Some(()) => w.notify_one(),
                    None => break,
                }
            }
        }
        if client.is_closed() {
            return Err((true, "connection closed".into()));
        }
    }
}

/// The next notification of `iter`, as `Some(())`.
fn fallible_next(iter: &mut postgres::notifications::TimeoutIter<'_>) -> Result<Option<()>, String> {
    use postgres::fallible_iterator::FallibleIterator;
    iter.next().map(|n| n.map(drop)).map_err(|e| e.to_string())
}
