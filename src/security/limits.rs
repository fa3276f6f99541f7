//! Connections per client address on the Kafka listeners (Kafka's
//! `max.connections.per.ip`), counted across every listener of the node.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Open connections by client address, with a per-address cap.
#[derive(Debug)]
pub struct ConnectionsPerIp {
    max: u32,
    open: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

/// One counted connection; dropping it frees the slot.
#[derive(Debug)]
pub struct IpSlot {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

impl ConnectionsPerIp {
    /// At most `max` connections from one address.
    pub fn new(max: u32) -> Self {
        ConnectionsPerIp {
            max,
            open: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A slot for a new connection from `ip`, or `None` when it already has `max`.
    pub fn acquire(&self, ip: IpAddr) -> Option<IpSlot> {
        let mut open = self.open.lock().expect("connection count lock poisoned");
        let count = open.entry(ip).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(IpSlot {
            ip,
            open: self.open.clone(),
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().expect("connection count lock poisoned");
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_at_most_max_slots_and_gets_them_back() {
        let limit = ConnectionsPerIp::new(2);
        let ip: IpAddr = "10.1.1.1".parse().unwrap();
        let a = limit.acquire(ip).unwrap();
        let _b = limit.acquire(ip).unwrap();
        assert!(limit.acquire(ip).is_none());
        assert!(limit.acquire("10.1.1.2".parse().unwrap()).is_some());
        drop(a);
        assert!(limit.acquire(ip).is_some());
    }
}
