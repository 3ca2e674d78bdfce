//! A verifier behind a real caching proxy (issue 22): nginx caches the
//! real issuer's JWKS and adds `Age` to cached answers through its njs
//! module (Debian's nginx sends none), computed from the origin's `Date`
//! it keeps in the cache. The verifier's computed expiry must be
//! `max-age - Age` counted from its fetch (RFC 9111 §4.2.3), so it never
//! holds keys longer than the issuer's `max-age` counted from the origin.
//!
//! nginx and `libnginx-mod-http-js` come from `.ci/run`; without them the
//! test is skipped with a loud message, except under CI, where it fails.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use jwks_e2e::{AUDIENCE, ChildGuard, ES_CLIENT, Issuer, IssuerOptions, free_port};
use jwks_verifier::Verifier;

use crate::common::{Auth, http, token};

const NGINX: &str = "/usr/sbin/nginx";
const NJS: &str = "/usr/lib/nginx/modules/ngx_http_js_module.so";
/// The issuer's `jwks.max_age`, in seconds.
const MAX_AGE: u64 = 120;

const AGE_JS: &str = r#"
// Age (RFC 9111 §5.1) of a cached answer: now less the origin's Date.
function age(r) {
    var date = r.headersOut['Date'];
    if (date) {
        var a = Math.floor((Date.now() - Date.parse(date)) / 1000);
        r.headersOut['Age'] = String(a < 0 ? 0 : a);
    }
}
export default { age };
"#;

fn nginx_ready() -> bool {
    let missing: Vec<&str> = [NGINX, NJS].into_iter().filter(|p| !Path::new(p).exists()).collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "the Age e2e test under CI needs nginx-light and libnginx-mod-http-js: {missing:?}"
    );
    eprintln!("\n!!!!!!!! SKIPPED the Age e2e test: missing {missing:?}");
    eprintln!("!!!!!!!! install with: apt-get install -y nginx-light libnginx-mod-http-js\n");
    false
}

/// nginx on `port`, caching `upstream` (host:port) and adding `Age`.
fn start_nginx(dir: &Path, port: u16, upstream: &str) -> ChildGuard {
    let d = dir.display();
    std::fs::write(dir.join("age.js"), AGE_JS).unwrap();
    let conf = format!(
        r#"load_module {NJS};
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    proxy_cache_path {d}/cache keys_zone=jwks:1m;
    js_import age from {d}/age.js;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://{upstream};
            proxy_cache jwks;
            # The cached answer keeps the origin's Date, which Age is computed from.
            proxy_pass_header Date;
            js_header_filter age.age;
            add_header X-Cache $upstream_cache_status always;
        }}
    }}
}}
"#
    );
    let path: PathBuf = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let child = Command::new(NGINX)
        .arg("-c")
        .arg(&path)
        .arg("-p")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx");
    ChildGuard::new(child)
}

/// The `Age` and `X-Cache` of a GET of `url`.
async fn get_age(http: &reqwest::Client, url: &str) -> Option<(u64, String)> {
    let resp = http.get(url).send().await.ok()?;
    let age = resp.headers().get("age")?.to_str().ok()?.parse().ok()?;
    let cache = resp.headers().get("x-cache").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    if cache != "HIT" {
        eprintln!("age_proxy: {} {cache}: {:?}", resp.status(), resp.headers());
    }
    Some((age, cache))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifier_behind_a_caching_proxy_expires_keys_at_max_age_less_age() {
    if !nginx_ready() {
        return;
    }
    let issuer = Issuer::start(&IssuerOptions { max_age: "2m", publish_ahead: "10m", ..IssuerOptions::default() });
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let upstream = issuer.url.trim_start_matches("http://").to_owned();
    let _nginx = start_nginx(dir.path(), port, &upstream);
    let path = issuer.jwks_uri().trim_start_matches(&issuer.url).to_owned();
    let proxied = format!("http://127.0.0.1:{port}{path}");
    let http = http();

    // Prime the cache, then let the cached copy age a little (real time).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut first = None;
    while first.is_none() && Instant::now() < deadline {
        first = get_age(&http, &proxied).await;
        if first.is_none() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let (_, status) = first.unwrap_or_else(|| {
        panic!("nginx did not answer; log: {:?}", std::fs::read_to_string(dir.path().join("error.log")))
    });
    assert_eq!(status, "MISS");
    loop {
        let (age, status) = get_age(&http, &proxied).await.unwrap();
        assert_eq!(status, "HIT");
        if age >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the cached copy did not age");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The verifier's fetch lands between two probes that saw the same Age.
    loop {
        let (before, _) = get_age(&http, &proxied).await.unwrap();
        let verifier = Verifier::builder()
            .issuer(&issuer.url)
            .audience(AUDIENCE)
            .jwks_uri(&proxied)
            .min_ttl(Duration::from_secs(1))
            .build()
            .await
            .unwrap();
        let (after, _) = get_age(&http, &proxied).await.unwrap();
        if before != after {
            assert!(Instant::now() < deadline, "Age kept changing between probes");
            continue;
        }
        let status = verifier.status();
        let lifetime = status.expires_at.unwrap().duration_since(status.validated_at.unwrap()).unwrap();
        assert_eq!(lifetime, Duration::from_secs(MAX_AGE - after), "expiry = max-age - Age (Age {after})");
        assert!(after >= 2);
        let refresh = status.refresh_at.unwrap().duration_since(status.validated_at.unwrap()).unwrap();
        assert!(refresh >= lifetime.mul_f64(0.79) && refresh <= lifetime.mul_f64(0.96), "{refresh:?} of {lifetime:?}");
        // And the keys fetched through the proxy verify the issuer's tokens.
        let t = token(&http, &issuer, ES_CLIENT, Auth::Basic).await;
        verifier.verify(&t).await.unwrap();
        break;
    }
}
