//! Pure numerics on slices of samples: no I/O, no knowledge of scenarios or reports.
//!
//! Today this is ordinary least squares with a Student-t confidence interval; robust slopes,
//! plateau detection and sequential tests belong here too, each as its own module returning a
//! [`Fit`]-like value that [`crate::verdict`] consumes.

mod ols;

pub use ols::{Fit, fit_ols};
