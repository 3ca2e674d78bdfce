//! `jwks-issuer serve`: the HTTP server and the rotation scheduler.

use std::{sync::Arc, time::Duration};

use actix_web::{App, HttpServer, web};
use jwks_jose::clock::{SystemClock, UnixTime};

use crate::{
    Config, Error,
    clock::SharedClock,
    http::{self, AppState},
    keys::{self, Keyring},
    tls::CertResolver,
};

/// The development client's id and secret, as printed in the README.
pub(crate) const DEV_CLIENT_ID: &str = "demo";
/// The development client's secret (README). Never use it beyond a laptop.
pub(crate) const DEV_CLIENT_SECRET: &str = "demo-secret-do-not-use-in-production";

/// How often the scheduler looks at the store and the clock (besides
/// waking at each instant a key changes state).
pub(crate) const TICK: Duration = keys::FOLLOW_INTERVAL;

/// Opens the key ring for `config` on a blocking thread.
pub(crate) async fn open_keyring(config: &Config, clock: SharedClock) -> Result<Arc<Keyring>, Error> {
    let config = config.clone();
    let ring = tokio::task::spawn_blocking(move || {
        let opened = keys::open_store(&config.keys.store)?;
        Keyring::open_with(
            opened.store,
            opened.coordination,
            clock,
            config.keys.algorithms.clone(),
            config.key_policy(),
            config.keys.rsa_bits,
        )
    })
    .await
    .map_err(|e| Error::Store(format!("key loading task failed: {e}")))??;
    Ok(Arc::new(ring))
}

/// Runs the server until it is stopped (SIGINT or SIGTERM).
pub(crate) async fn run(config: Config) -> Result<(), Error> {
    let config = Arc::new(config);
    let clock: SharedClock = Arc::new(SystemClock);
    // The port first: a server that cannot listen touches no key store.
    let listener = std::net::TcpListener::bind(config.listen)
        .map_err(|e| Error::Usage(format!("cannot listen on {}: {e}", config.listen)))?;
    // Then the certificate: a bad file fails the start before the store.
    let tls = match config.tls.clone() {
        None => None,
        Some(files) => Some(Arc::new(
            tokio::task::spawn_blocking(move || CertResolver::open(files))
                .await
                .map_err(|e| Error::Usage(format!("certificate loading task failed: {e}")))??,
        )),
    };
    let keyring = open_keyring(&config, clock.clone()).await?;
    let state = web::Data::new(AppState::new(config.clone(), keyring.clone(), clock)?);
    warn_dev_client(&config).await;

    let scheduler = tokio::spawn(schedule(state.clone()));
    let app_state = state.clone();
    let server = HttpServer::new(move || App::new().configure(http::routes(&app_state)))
        .client_request_timeout(Duration::from_secs(5))
        .client_disconnect_timeout(Duration::from_secs(1))
        .keep_alive(Duration::from_secs(30))
        .tls_handshake_timeout(TLS_HANDSHAKE_TIMEOUT)
        .shutdown_timeout(5);
    let server = match &tls {
        None => server.listen(listener),
        Some(resolver) => server.listen_rustls_0_23(listener, resolver.server_config()?),
    }
    .map_err(|e| Error::Usage(format!("cannot listen on {}: {e}", config.listen)))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let reloader = match tls {
        None => None,
        Some(resolver) => Some(tokio::spawn(reload_on_hangup(resolver)?)),
    };
    for a in server.addrs() {
        tracing::info!(
            "listening on {scheme}://{a}: POST /token, GET /.well-known/jwks.json, /.well-known/oauth-authorization-server, /.well-known/openid-configuration, /healthz, /readyz{}",
            if config.admin_listen.is_none() { ", /metrics" } else { "" }
        );
    }
    let admin = match config.admin_listen {
        None => None,
        Some(admin) => {
            let admin_state = state.clone();
            let server = HttpServer::new(move || App::new().configure(http::admin_routes(&admin_state)))
                .workers(1)
                .client_request_timeout(Duration::from_secs(5))
                .shutdown_timeout(5)
                .bind(admin)
                .map_err(|e| Error::Usage(format!("cannot listen on {admin} (`admin.listen`): {e}")))?;
            for a in server.addrs() {
                tracing::info!("admin listener on http://{a}: GET /metrics");
            }
            Some(server.run())
        }
    };
    tracing::info!(issuer = %config.issuer, clients = config.clients.len(), "jwks-issuer ready");
    let public = server.run();
    let result = match admin {
        None => public.await,
        Some(admin) => futures_util::future::try_join(public, admin).await.map(drop),
    }
    .map_err(|e| Error::Usage(format!("server failed: {e}")));
    scheduler.abort();
    if let Some(task) = reloader {
        task.abort();
    }
    result
}

/// How long a client may take to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);

/// Installs the `SIGHUP` handler (before the server answers, so that a
/// hang-up never kills it) and returns the task that reloads the
/// certificate on each one: new connections get the new files; open ones
/// keep theirs; files that do not load leave the old certificate, logged.
fn reload_on_hangup(resolver: Arc<CertResolver>) -> Result<impl Future<Output = ()>, Error> {
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| Error::Usage(format!("cannot handle SIGHUP (certificate reloads): {e}")))?;
    let cert_file = resolver.files().cert_file.display().to_string();
    Ok(async move {
        while hangup.recv().await.is_some() {
            let r = resolver.clone();
            match tokio::task::spawn_blocking(move || r.reload()).await {
                Ok(Ok(())) => tracing::info!(cert_file, "SIGHUP: TLS certificate reloaded"),
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "SIGHUP: TLS certificate not reloaded; serving the previous one")
                }
                Err(e) => tracing::error!(error = %e, "SIGHUP: certificate reload task failed"),
            }
        }
    })
}

/// The rotation scheduler: one blocking tick per [`TICK`], one as soon as
/// the store reports a change by another process, and one at the instant
/// the next key changes state (a successor starts signing, a key enters or
/// leaves the JWKS), so that every server switches within milliseconds of
/// the instant the timeline names and never before it.
async fn schedule(state: web::Data<AppState>) {
    let wake = Arc::new(tokio::sync::Notify::new());
    state.keyring.coordination().watch(Arc::downgrade(&wake));
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The change instant already woken for: never spin on one that a
    // failed step did not move past.
    let mut woken_for: Option<UnixTime> = None;
    loop {
        let next = state.keyring.snapshot().next_change.filter(|t| woken_for != Some(*t));
        let until_change = next.map(|t| {
            // Instants are whole seconds: `t` begins at t.000; wake just after.
            Duration::from_secs(t.as_secs()).saturating_sub(crate::clock::precise(state.clock.as_ref()))
                + Duration::from_millis(2)
        });
        let at_change = async {
            match until_change {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = interval.tick() => {}
            _ = wake.notified() => {}
            _ = at_change => woken_for = next,
        }
        let ring = state.keyring.clone();
        match tokio::task::spawn_blocking(move || ring.tick()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                state.metrics.rotation_failed();
                tracing::error!(error = %e, "rotation step failed; signing continues with the current keys");
            }
            Err(e) => tracing::error!(error = %e, "rotation task panicked"),
        }
    }
}

/// Warns when the README's development client is enabled on an address
/// other hosts can reach.
async fn warn_dev_client(config: &Config) {
    if config.listen.ip().is_loopback() {
        return;
    }
    let Some(client) = config.clients.iter().find(|c| c.id == DEV_CLIENT_ID).cloned() else { return };
    let is_dev = tokio::task::spawn_blocking(move || match &client.auth {
        crate::oauth::ClientAuth::Secret { hash } => argon2::PasswordHash::new(hash)
            .map(|h| {
                argon2::PasswordVerifier::verify_password(&argon2::Argon2::default(), DEV_CLIENT_SECRET.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false),
        _ => false,
    })
    .await
    .unwrap_or(false);
    if is_dev {
        tracing::warn!(
            listen = %config.listen,
            "the development client `demo` with the README's secret is enabled on a non-loopback address; remove it from the config"
        );
    }
}
