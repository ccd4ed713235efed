//! The `corral` command: `serve` (API + control plane + local agent), `credentials`,
//! `images build`, `doctor`, `agent`. The command-line contract is in shared/DESIGN.md;
//! add to it, never rename.

mod doctor;
mod images;
mod regions;
mod serve;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// The process's allocator. glibc's malloc searched its bins for a tenth of the server's time
/// at 50,000 instances (the heap a fleet-sized pass leaves behind is fragmented), against a
/// fortieth at 1,000; with mimalloc, launch and terminate pairs ran about a fifth faster at
/// 50,000 in alternating rounds (BENCHMARKS.md). `fleet_work::give_back_memory` returns its
/// free pages after fleet-sized work.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The storage pool (volume, snapshot and image layers), under the state directory.
pub const POOL_DIR: &str = "pool";

#[derive(Parser)]
#[command(name = "corral", version, about = "A private cloud that speaks the AWS EC2 API and boots real VMs")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone, Debug)]
pub struct StateArgs {
    /// Where Corral keeps its store, VMs and credentials.
    #[arg(long, global = true, env = "CORRAL_STATE_DIR", default_value_os_t = default_state_dir())]
    pub state_dir: PathBuf,
}

// Parsed once at start: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Runs the API, the control plane and the local agent in the foreground.
    Serve(serve::ServeArgs),
    /// Prints the root credentials; creates, lists and revokes access keys.
    Credentials {
        #[command(flatten)]
        state: StateArgs,
        /// As `export` lines for a shell: `eval "$(corral credentials --env)"`.
        #[arg(long)]
        env: bool,
        #[command(subcommand)]
        action: Option<CredentialsAction>,
    },
    /// Default images.
    Images {
        #[command(subcommand)]
        command: images::ImagesCommand,
    },
    /// Checks the host and says what to install.
    Doctor {
        #[command(flatten)]
        state: StateArgs,
        /// Checks only that every region's store is consistent (each reference names a record
        /// that exists); exits non-zero when it is not.
        #[arg(long)]
        store: bool,
    },
    /// Joins this host to another host's control plane.
    Agent {
        #[arg(long)]
        control_plane: String,
    },
}

#[derive(Subcommand)]
enum CredentialsAction {
    /// Creates an access key and prints it (its secret is shown this once).
    Create,
    /// Lists the access keys (ids and when they were made; never the secrets).
    List,
    /// Revokes an access key: requests signed with it are refused from the next one on. The
    /// last key is kept.
    Revoke { access_key_id: String },
}

pub fn default_state_dir() -> PathBuf {
    if is_root() {
        PathBuf::from("/var/lib/corral")
    } else {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
        home.join(".local/share/corral")
    }
}

pub fn is_root() -> bool {
    #[allow(unsafe_code)]
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    uid == 0
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("CORRAL_LOG").unwrap_or_else(|_| "info,corral=info".into()))
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Serve(args) => rt.block_on(serve::run(args)),
        Command::Credentials { state, env, action: None } => credentials(&state, env),
        Command::Credentials { state, env, action: Some(action) } => credentials_manage(&state, env, action),
        Command::Images { command } => rt.block_on(images::run(command)),
        Command::Doctor { state, store: false } => rt.block_on(doctor::run(&state)),
        Command::Doctor { state, store: true } => doctor::stores(&state),
        Command::Agent { control_plane } => {
            anyhow::bail!(
                "joining a control plane at {control_plane} needs the multi-host agent API, which is not built yet; \
                 run `corral serve` on one host for now"
            )
        }
    }
}

/// The home region's store, which holds the credentials.
fn credentials_store(state: &StateArgs) -> anyhow::Result<corral_store::Store> {
    let db = state.state_dir.join("corral.db");
    if !db.exists() {
        anyhow::bail!("no Corral state at {}: start it first with `corral serve`", state.state_dir.display());
    }
    Ok(corral_store::Store::open(&db)?)
}

fn credentials_manage(state: &StateArgs, env: bool, action: CredentialsAction) -> anyhow::Result<()> {
    let store = credentials_store(state)?;
    let failed = |e: corral_types::Error| anyhow::anyhow!("{}", e.internal.unwrap_or(e.message));
    match action {
        CredentialsAction::Create => {
            let key = corral_control::access_key_create(&store).map_err(failed)?;
            print_key(state, &key, env);
        }
        CredentialsAction::List => {
            for k in store.read(|tx| tx.access_key_list())? {
                println!("{}  created {}", k.access_key_id, k.created_at);
            }
        }
        CredentialsAction::Revoke { access_key_id } => {
            corral_control::access_key_revoke(&store, &access_key_id).map_err(failed)?;
            println!("revoked {access_key_id}");
        }
    }
    Ok(())
}

fn credentials(state: &StateArgs, env: bool) -> anyhow::Result<()> {
    let store = credentials_store(state)?;
    let key = store
        .read(|tx| tx.access_key_first())?
        .ok_or_else(|| anyhow::anyhow!("the store has no credentials yet: start `corral serve` once"))?;
    print_key(state, &key, env);
    Ok(())
}

fn print_key(state: &StateArgs, key: &corral_store::AccessKey, env: bool) {
    let meta = serve::read_endpoint(&state.state_dir);
    let (endpoint, region) = meta.unwrap_or_else(|| ("http://127.0.0.1:8773".into(), "local-1".into()));
    if env {
        println!("export AWS_ACCESS_KEY_ID={}", key.access_key_id);
        println!("export AWS_SECRET_ACCESS_KEY={}", key.secret_access_key);
        println!("export AWS_DEFAULT_REGION={region}");
        println!("export AWS_REGION={region}");
        println!("export AWS_ENDPOINT_URL={endpoint}");
    } else {
        println!("access key id:     {}", key.access_key_id);
        println!("secret access key: {}", key.secret_access_key);
        println!("region:            {region}");
        println!("endpoint:          {endpoint}");
    }
}
