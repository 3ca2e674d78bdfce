//! Leadership and change notification between the processes that share a
//! store: who plans rotation, and how a process hears that another changed
//! the store. A folder needs neither ([`Solo`]: every process plans under
//! the lock, and the scheduler polls the folder); PostgreSQL elects one
//! leader and notifies (`super::election::PgCoordination`).

use std::{fmt, sync::Weak};

use tokio::sync::Notify;

use crate::Error;

/// Leadership and change notification. Blocking: call off the executor.
pub trait Coordination: Send + Sync + fmt::Debug {
    /// Whether this process should plan and apply rotation now.
    fn try_lead(&self) -> Result<bool, Error>;
    /// Whether [`Coordination::try_lead`] elects one process among several.
    fn elects_leader(&self) -> bool;
    /// Arranges for `wake` to be notified soon after another process
    /// changes the store, where the store can tell. The scheduler polls
    /// the store's fingerprint every `FOLLOW_INTERVAL` either way.
    fn watch(&self, wake: Weak<Notify>);
}

/// Every process leads (plans under the store lock), and nothing notifies:
/// the folder store.
#[derive(Debug, Clone, Copy, Default)]
pub struct Solo;

impl Coordination for Solo {
    fn try_lead(&self) -> Result<bool, Error> {
        Ok(true)
    }
    fn elects_leader(&self) -> bool {
        false
    }
    fn watch(&self, _wake: Weak<Notify>) {}
}
