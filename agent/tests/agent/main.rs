//! In-process tests of the agent library (a real `Service` on a temp dir).

mod invariants;
mod otk_binding;
