// glibc's malloc spent a seventh of /auth/me's CPU time, much of it freeing on one
// thread what another allocated (SQLite's worker threads hand rows to the async ones).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    gatehouse::cli::main()
}
