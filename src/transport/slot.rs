//! One of the `max_connections` slots a served connection holds.
//!
//! The accept loop hands one out per connection; a WebSocket tunnel keeps a
//! clone, so the slot frees only when the connection and its tunnel are
//! both gone, and shutdown can wait for every slot to come back.

use std::sync::Arc;

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::OwnedSemaphorePermit;

/// A held slot; clones share it.
#[derive(Debug, Clone)]
pub struct ConnectionSlot(#[allow(dead_code)] Arc<SlotGuard>);

#[derive(Debug)]
struct SlotGuard {
    _permit: OwnedSemaphorePermit,
    active: Gauge,
}

impl ConnectionSlot {
    /// Holds `permit` and counts the connection in `active` until the last
    /// clone is dropped.
    pub fn new(permit: OwnedSemaphorePermit, active: Gauge) -> Self {
        active.inc();
        Self(Arc::new(SlotGuard {
            _permit: permit,
            active,
        }))
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.active.dec();
    }
}
