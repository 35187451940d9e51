//! `roformer coordinator`: the meeting point of a multi-machine training run.

use anyhow::Result;
use roformer_train::train::Coordinator;

use crate::args::CoordinatorArgs;

pub fn run(args: CoordinatorArgs) -> Result<()> {
    let coordinator = Coordinator::bind(args.port)?;
    eprintln!(
        "coordinator listening on port {} (every interface); stop it with Ctrl-C once the run is over",
        coordinator.port()
    );
    coordinator.run();
    Ok(())
}
