//! `roformer serve`: the models loaded, the server listening (its address printed), until
//! SIGTERM or Ctrl-C; requests in flight finish before it exits.

use anyhow::{Context, Result};
use roformer_serve::{ModelSpec, Server, Stopped, shutdown_signal};

use crate::args::ServeArgs;
use crate::backend;

pub fn run(args: ServeArgs) -> Result<()> {
    let device = backend::device()?;
    let models: Vec<ModelSpec> = args.models.iter().map(|s| ModelSpec::parse(s)).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("the server's runtime")?;
    runtime.block_on(async {
        let server = Server::start::<backend::Inference>(&models, args.options, device).await?;
        let names: Vec<String> = models
            .iter()
            .map(|m| format!("{} ({})", m.name, m.dir.display()))
            .collect();
        eprintln!(
            "serving {} with {} on http://{}",
            names.join(", "),
            backend::NAME,
            server.local_addr()
        );
        match server.run(shutdown_signal()).await? {
            Stopped::Drained => eprintln!("stopped: every request in flight was answered"),
            Stopped::DrainTimeout => {
                eprintln!("stopped: the drain timeout passed with requests still in flight")
            }
        }
        Ok(())
    })
}
