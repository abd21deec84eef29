//! The `callvault` binary: `serve` (vault host and app gateway), `demo`, and the user commands
//! that drive a server as the user's app.

mod config;
mod demo;
mod serve;
mod user;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Self-hostable, end-to-end encrypted voice and video calling.
#[derive(Debug, Parser)]
#[command(name = "callvault", version, about, long_about = None)]
struct Cli {
    /// Where the user's identity lives (user commands).
    #[arg(long, global = true, env = "CALLVAULT_HOME")]
    home: Option<PathBuf>,
    /// The server's app API (user commands).
    #[arg(long, global = true, env = "CALLVAULT_SERVER", default_value = "ws://127.0.0.1:7700/app")]
    server: String,
    /// Print one JSON object instead of text (user commands).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Run the server: users' vaults and the app gateway (embedded defaults, or NATS with --nats).
    Serve {
        /// Configuration file (TOML; see docs/CONFIG.md).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Address to listen on (key `listen`).
        #[arg(long)]
        listen: Option<String>,
        /// Data directory (key `data_dir`).
        #[arg(long)]
        data_dir: Option<String>,
        /// NATS URL: share bus and store with other `serve` processes (key `nats`).
        #[arg(long)]
        nats: Option<String>,
    },
    /// Run a whole call between two users on an in-process server and print the timeline.
    Demo {
        /// How long the call stays up, seconds.
        #[arg(long, default_value_t = 1)]
        hold: u64,
    },
    /// The user's identity.
    #[command(subcommand)]
    Id(IdCommand),
    /// Make an invite for someone to connect with you.
    Invite {
        /// Seconds the invite is valid.
        #[arg(long, default_value_t = 86_400)]
        ttl: u64,
    },
    /// Accept someone's invite.
    Connect {
        /// The invite token (`cvinv1_...`).
        token: String,
    },
    /// List your connections.
    Connections,
    /// Call a connection (by guid or display name) and wait for the answer.
    Call {
        /// Guid or display name.
        peer: String,
        /// Video call.
        #[arg(long)]
        video: bool,
        /// Seconds to wait for the peer's vault to ring before calling them offline.
        #[arg(long, default_value_t = 10)]
        ring_wait: u64,
        /// Seconds to wait for an answer.
        #[arg(long, default_value_t = 90)]
        wait: u64,
        #[command(flatten)]
        audio: AudioArgs,
    },
    /// Answer a ringing call (the newest, or the given one; or wait for one).
    Answer {
        /// The call.
        call_id: Option<String>,
        /// Seconds to wait for an incoming call when none rings.
        #[arg(long, default_value_t = 0)]
        wait: u64,
        #[command(flatten)]
        audio: AudioArgs,
    },
    /// Decline a ringing call.
    Reject {
        /// The call.
        call_id: Option<String>,
        /// Seconds to wait for an incoming call when none rings.
        #[arg(long, default_value_t = 0)]
        wait: u64,
    },
    /// Hang up the active call (or cancel an unanswered outgoing one).
    Hangup {
        /// The call.
        call_id: Option<String>,
    },
    /// Your calls, newest first, from your vault.
    History {
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Send a message to a connection (by guid or display name), sealed so only the two of you
    /// can read it.
    Message {
        /// Guid or display name.
        peer: String,
        /// The text (at most 16 384 bytes).
        text: String,
        /// Seconds to wait for the peer's vault to store it.
        #[arg(long, default_value_t = 5)]
        wait: u64,
    },
    /// Your conversation with a connection, newest last (marks their messages read).
    Messages {
        /// Guid or display name.
        peer: String,
        /// How many, the newest.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Show your profile, or change your display name and avatar (your connections see it).
    Profile {
        /// The new display name.
        #[arg(long)]
        name: Option<String>,
        /// An https:// URL of your avatar (with --name).
        #[arg(long, requires = "name")]
        avatar: Option<String>,
    },
    /// List the protocol schemas this build speaks (schema id and Rust type).
    Schemas,
}

/// Audio for `call` and `answer`: with either of `--audio-in`/`--audio-out` the command carries
/// the call's media (end-to-end encrypted) until one side hangs up.
#[derive(Debug, clap::Args)]
struct AudioArgs {
    /// What to send: `tone:<Hz>`, `silence`, or a 48 kHz mono 16-bit WAV file.
    #[arg(long)]
    audio_in: Option<String>,
    /// Where to write what the peer sends (WAV, 48 kHz mono).
    #[arg(long)]
    audio_out: Option<PathBuf>,
    /// Media only through a TURN relay: no address of this device reaches the peer.
    #[arg(long)]
    relay_only: bool,
    /// Hang up after this many seconds of media.
    #[arg(long)]
    duration: Option<u64>,
}

impl AudioArgs {
    fn audio(&self) -> user::Audio {
        user::Audio {
            input: self.audio_in.clone(),
            output: self.audio_out.clone(),
            relay_only: self.relay_only,
            duration: self.duration.map(Duration::from_secs),
        }
    }
}

#[derive(Debug, clap::Subcommand)]
enum IdCommand {
    /// Make a new identity.
    New {
        /// Your display name.
        #[arg(long)]
        name: String,
        /// Replace an existing identity.
        #[arg(long)]
        force: bool,
    },
    /// Show the identity.
    Show,
    /// Write the identity to FILE, sealed under $CALLVAULT_PASSPHRASE.
    Export {
        /// Where.
        file: PathBuf,
    },
    /// Read an identity exported with `id export`.
    Import {
        /// From where.
        file: PathBuf,
        /// Your display name.
        #[arg(long)]
        name: String,
        /// Replace an existing identity.
        #[arg(long)]
        force: bool,
    },
}

fn default_home() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from(".callvault"), |h| PathBuf::from(h).join(".callvault"))
}

fn init_logs(level: tracing::Level) {
    let _ = tracing_subscriber::fmt().with_max_level(level).with_writer(std::io::stderr).with_target(false).try_init();
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            report(&anyhow::anyhow!("cannot start the runtime: {e}"));
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(2),
        Err(e) => {
            report(&e);
            std::process::ExitCode::FAILURE
        }
    }
}

fn report(e: &anyhow::Error) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "error: {e:#}");
}

/// Runs a command; Ok(false) is a clean "no" (a call not answered).
async fn run(cli: Cli) -> anyhow::Result<bool> {
    let home =
        user::Home { dir: cli.home.clone().unwrap_or_else(default_home), server: cli.server.clone(), json: cli.json };
    let secs = Duration::from_secs;
    match cli.command {
        Some(Command::Serve { config, listen, data_dir, nats }) => {
            let mut flags = Vec::new();
            for (key, v) in [("listen", listen), ("data_dir", data_dir), ("nats", nats)] {
                if let Some(v) = v {
                    flags.push((key, v));
                }
            }
            let cfg = config::load(config.as_deref(), std::env::vars(), &flags)?;
            init_logs(cfg.log);
            serve::run(cfg, serve::signal(), |l| {
                use std::io::Write;
                let mut o = std::io::stdout().lock();
                let _ =
                    writeln!(o, "callvault listening on {} ({}); app API at ws://{}/app", l.addr, l.backend, l.addr);
                let _ = o.flush();
            })
            .await?;
        }
        Some(Command::Demo { hold }) => demo::run(secs(hold)).await?,
        Some(Command::Id(IdCommand::New { name, force })) => user::id_new(&home, &name, force)?,
        Some(Command::Id(IdCommand::Show)) => user::id_show(&home)?,
        Some(Command::Id(IdCommand::Export { file })) => user::id_export(&home, &file)?,
        Some(Command::Id(IdCommand::Import { file, name, force })) => user::id_import(&home, &file, &name, force)?,
        Some(Command::Invite { ttl }) => user::invite(&home, ttl).await?,
        Some(Command::Connect { token }) => user::connect(&home, &token).await?,
        Some(Command::Connections) => user::connections(&home).await?,
        Some(Command::Call { peer, video, ring_wait, wait, audio }) => {
            return user::call(&home, &peer, video, secs(ring_wait), secs(wait), &audio.audio()).await;
        }
        Some(Command::Answer { call_id, wait, audio }) => {
            user::answer(&home, call_id.as_deref(), secs(wait), &audio.audio()).await?;
        }
        Some(Command::Reject { call_id, wait }) => user::reject(&home, call_id.as_deref(), secs(wait)).await?,
        Some(Command::Hangup { call_id }) => user::hangup(&home, call_id.as_deref()).await?,
        Some(Command::History { limit }) => user::history(&home, limit).await?,
        Some(Command::Message { peer, text, wait }) => user::message(&home, &peer, &text, secs(wait)).await?,
        Some(Command::Messages { peer, limit }) => user::messages(&home, &peer, limit).await?,
        Some(Command::Profile { name, avatar }) => user::profile(&home, name.as_deref(), avatar.as_deref()).await?,
        Some(Command::Schemas) => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            for e in callvault_protocol::registry::ENTRIES.iter().chain(callvault_protocol::registry::MESSAGING_ENTRIES)
            {
                writeln!(out, "{}\t{}", e.id, e.rust_type)?;
            }
        }
        None => {
            use clap::CommandFactory;
            Cli::command().print_help()?;
        }
    }
    Ok(true)
}
