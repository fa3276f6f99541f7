pub mod wire_guard;
