//! The `ferrio` binary: read the environment, start logging, run the hub until a signal.

use std::process::ExitCode;

fn main() -> ExitCode {
    let config = match ferrio::config::Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ferrio: {e}");
            return ExitCode::from(2);
        }
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let result = actix_web::rt::System::new().block_on(async move {
        ferrio::server::Server::new(config, ferrio::hub::Hub::new())
            .bind()?
            .run_until_signal()
            .await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrio: {e}");
            ExitCode::FAILURE
        }
    }
}
