pub use raft; pub use axum;
