//! The places a served connection holds: one of `limits.max_connections`
//! and one of its client address's `limits.max_connections_per_client`.
//!
//! The accept loop takes the first before it accepts; the second is taken
//! once the client address is known (after the PROXY header, when there is
//! one). A WebSocket tunnel keeps a clone of the [`ConnectionSlot`], so both
//! free only when the connection and its tunnel are gone, and shutdown can
//! wait for every slot to come back.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::OwnedSemaphorePermit;

/// A held slot; clones share it.
#[derive(Debug, Clone)]
pub struct ConnectionSlot(#[allow(dead_code)] Arc<SlotGuard>);

#[derive(Debug)]
struct SlotGuard {
    _permit: OwnedSemaphorePermit,
    _seat: ClientSeat,
    active: Gauge,
}

impl ConnectionSlot {
    /// Holds `permit` and `seat`, and counts the connection in `active`,
    /// until the last clone is dropped.
    pub fn new(permit: OwnedSemaphorePermit, seat: ClientSeat, active: Gauge) -> Self {
        active.inc();
        Self(Arc::new(SlotGuard {
            _permit: permit,
            _seat: seat,
            active,
        }))
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.active.dec();
    }
}

/// Connections open per client address. Bounded without a sweep: an
/// address is in the map only while it has a connection open, so the map
/// never holds more than `max_connections` entries, however many source
/// addresses a client sprays.
#[derive(Debug, Default)]
pub struct ClientConnections {
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl ClientConnections {
    /// A seat for one more connection from `client`, or `None` when it
    /// already has `max` open.
    pub fn admit(self: &Arc<Self>, client: IpAddr, max: usize) -> Option<ClientSeat> {
        let client = client.to_canonical();
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(client).or_insert(0);
        if *count >= max {
            if *count == 0 {
                open.remove(&client);
            }
            return None;
        }
        *count += 1;
        Some(ClientSeat {
            owner: self.clone(),
            client,
        })
    }

    /// Addresses with a connection open.
    pub fn clients(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// One connection's place in its client address's count.
#[derive(Debug)]
pub struct ClientSeat {
    owner: Arc<ClientConnections>,
    client: IpAddr,
}

impl Drop for ClientSeat {
    fn drop(&mut self) {
        let mut open = self.owner.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_max_seats_and_one_back_when_one_closes() {
        let clients = Arc::new(ClientConnections::default());
        let alice: IpAddr = "192.0.2.1".parse().unwrap();
        let mut seats: Vec<_> = (0..3).map(|_| clients.admit(alice, 3).unwrap()).collect();
        assert!(clients.admit(alice, 3).is_none());
        // IPv4-mapped IPv6 is the same client.
        assert!(clients
            .admit("::ffff:192.0.2.1".parse().unwrap(), 3)
            .is_none());
        let bob = clients.admit("192.0.2.2".parse().unwrap(), 3);
        assert!(bob.is_some());
        drop(seats.pop());
        let again = clients.admit(alice, 3);
        assert!(again.is_some());
        drop(bob);
        assert_eq!(clients.clients(), 1);
        drop((seats, again));
        assert_eq!(clients.clients(), 0);
    }

    #[test]
    fn the_map_forgets_addresses_without_connections() {
        let clients = Arc::new(ClientConnections::default());
        for i in 0..1000u32 {
            let seat = clients.admit(IpAddr::V4(i.into()), 1);
            assert!(seat.is_some());
        }
        assert_eq!(clients.clients(), 0);
    }
}
