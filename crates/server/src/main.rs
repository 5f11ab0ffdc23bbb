use clap::Parser as _;
use orderly_server::cli::{Cli, run};

/// mimalloc instead of glibc's allocator: a request allocates and frees many small buffers
/// (rows, strings, JSON), and issue 11's profile found about a sixth of the server's time in
/// glibc's malloc and free (`docs/performance.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
