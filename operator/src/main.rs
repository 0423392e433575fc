//! The operator binary. Its controllers (watching the CRDs, owning the data-plane
//! Deployment, pushing snapshots) are not built yet; `compile()` in the library is the
//! part that decides what the data plane is told.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("ai-gateway-operator: the controllers are not built yet; the library's compile() is");
    ExitCode::from(2)
}
