pub mod bundle;
pub mod state;
