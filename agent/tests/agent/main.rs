//! In-process tests of the agent library (a real `Service` on a temp dir).

mod invariants;
mod method_table;
mod otk_binding;
