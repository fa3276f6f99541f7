//! Health: how the node tells the outside world it is alive. For now the systemd
//! notification protocol ([`notify`]); the health state machine, LEDs and admin HTTP join
//! here.

pub mod notify;
