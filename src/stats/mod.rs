//! Pure numerics on slices of samples: no I/O, no knowledge of scenarios or reports.
//!
//! - [`ols`]: least squares with a Student-t interval, kept for transparency;
//! - [`theil_sen`] and [`mann_kendall`]: the robust slope and the trend test that decide, with
//!   tie and autocorrelation corrections; [`trend`] runs them together on one window;
//! - [`plateau`]: segment slopes (does growth persist?) and where growth stopped;
//! - [`sequential`]: the looks of an adaptive run and the confidence spent at each.
//!
//! [`crate::verdict`] turns these into a verdict.

pub mod mann_kendall;
mod ols;
pub mod plateau;
pub mod sequential;
pub mod theil_sen;
pub mod trend;

pub use ols::{Fit, fit_ols};
pub use plateau::{Plateau, find_plateau, segment_slopes};
pub use sequential::{Look, schedule};
pub use trend::{RobustFit, fit_robust, fit_robust_thinned};
