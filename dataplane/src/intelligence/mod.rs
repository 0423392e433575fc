//! Routing intelligence: choosing the model for the task.

pub mod classify;
