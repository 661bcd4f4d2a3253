//! The FHIR R4 interactions of Hearth, written once and without HTTP: the
//! REST handlers (`hearth-http`), the entries of batch and transaction
//! Bundles, and `hearth import` all read what a request names with
//! [`checks`], address conditional writes with [`conditional`], and write
//! through [`write`] and [`patch`]; a Bundle's entries are read into an
//! [`interaction::Interaction`] and run by [`transaction::execute`]; files
//! are imported by [`load::Loader`]. Every failure is an [`ApiError`],
//! which maps to a status and an OperationOutcome in one table.
//!
//! Everything runs on a [`hearth_store::Store`] or inside one of its
//! transactions, which holds it to the grant of whoever asked: no function
//! here decides access.

pub mod checks;
pub mod conditional;
pub mod error;
pub mod interaction;
pub mod load;
pub mod patch;
mod references;
pub mod transaction;
pub mod write;

pub use error::ApiError;
