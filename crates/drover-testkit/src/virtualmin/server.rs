//! The HTTP side: a bare HTTP/1.0 server, so status lines, headers and broken connections are
//! exactly as chosen (remote.cgi answers `HTTP/1.0 200 Document follows` and closes).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

use super::content;
use super::programs::{PROGRAMS, Params};
use super::render::{Answer, Format, render};
use super::{Fault, REFUSAL_LATENCY, Shared, lock, median_latency};

const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 4 * 1024 * 1024;

pub(super) async fn spawn(
    listen: SocketAddr,
    shared: Arc<Shared>,
) -> std::io::Result<(SocketAddr, Option<Vec<u8>>, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let (acceptor, certificate) = if shared.config.tls {
        let (acceptor, der) = tls_acceptor()?;
        (Some(acceptor), Some(der))
    } else {
        (None, None)
    };
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            // Arrival is when the connection is accepted: the nearest the wire this side sees.
            let arrived = tokio::time::Instant::now();
            let shared = Arc::clone(&shared);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if lock(&shared.faults).down {
                    return;
                }
                match acceptor {
                    Some(acceptor) => {
                        if let Ok(tls) = acceptor.accept(stream).await {
                            serve(tls, peer.ip(), arrived, &shared).await;
                        }
                    }
                    None => serve(stream, peer.ip(), arrived, &shared).await,
                }
            });
        }
    });
    Ok((addr, certificate, task))
}

fn tls_acceptor() -> std::io::Result<(tokio_rustls::TlsAcceptor, Vec<u8>)> {
    let other = |e: &dyn std::fmt::Display| std::io::Error::other(e.to_string());
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .map_err(|e| other(&e))?;
    let der = cert.cert.der().to_vec();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| other(&e))?
    .with_no_client_auth()
    .with_single_cert(vec![der.clone().into()], key)
    .map_err(|e| other(&e))?;
    Ok((tokio_rustls::TlsAcceptor::from(Arc::new(config)), der))
}

struct Request {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> Option<Request> {
    let mut buffer = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        if buffer.len() > MAX_HEAD {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split_whitespace();
    let method = first.next()?.to_owned();
    let target = first.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        })
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
        .min(MAX_BODY);
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = vec![0u8; (length - body.len()).min(64 * 1024)];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    Some(Request {
        method,
        path: path.to_owned(),
        query: query.to_owned(),
        headers,
        body,
    })
}

/// miniserv's lock-out answer: its own header order, no length, an error page.
fn forbidden(reason: &str) -> Vec<u8> {
    let date = jiff::Timestamp::now().strftime("%a, %-d %b %Y %H:%M:%S GMT");
    let mut out = format!(
        "HTTP/1.0 403 {reason}\r\nServer: MiniServ\r\nDate: {date}\r\nContent-type: text/html; Charset=utf-8\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    out.extend_from_slice(
        format!(
            "<html>\n<head>\n<title>403 &mdash; {reason}</title></head>\n<body class=\"err-body\"><h2 class=\"err-head\">Error &mdash; {reason}</h2>\n</body></html>\n"
        )
        .as_bytes(),
    );
    out
}

fn response(status_line: &str, content_type: &str, extra: &str, body: &[u8]) -> Vec<u8> {
    let date = jiff::Timestamp::now().strftime("%a, %d %b %Y %H:%M:%S GMT");
    let mut out = format!(
        "HTTP/1.0 {status_line}\r\nDate: {date}\r\nServer: MiniServ\r\n{extra}Connection: close\r\nContent-type: {content_type}\r\n\r\n"
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

fn html_error(title: &str, text: &str) -> String {
    format!(
        "<html>\n<head>\n<title>{title}</title></head>\n<body><h2 class=\"err-head\">{title}</h2>\n<p class=\"err-content\">{text}</p> <p>\n</body></html>\n"
    )
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    ip: IpAddr,
    arrived: tokio::time::Instant,
    shared: &Shared,
) {
    let Some(request) = read_request(&mut stream).await else {
        return;
    };
    if request.path.starts_with(content::PREFIX) {
        let (status, content_type, body) = content::answer(
            &mut lock(&shared.state),
            &request.method,
            &request.path,
            &request.body,
        );
        let reply = response(&format!("{status} Test"), content_type, "", &body);
        let _ = stream.write_all(&reply).await;
        let _ = stream.shutdown().await;
        return;
    }
    let reply = answer(&request, ip, arrived, shared).await;
    let abrupt = reply
        .as_ref()
        .is_some_and(|bytes| bytes.starts_with(b"HTTP/1.0 403 "));
    if let Some(bytes) = reply {
        let _ = stream.write_all(&bytes).await;
        let _ = stream.flush().await;
    }
    if abrupt {
        // miniserv's lock-out answer: the TCP connection is closed under the TLS session,
        // without a close_notify, as the captures show. Dropping the stream does that.
        drop(stream);
        return;
    }
    let _ = stream.shutdown().await;
}

fn scaled(shared: &Shared, d: Duration) -> Duration {
    d.mul_f64(shared.config.latency_scale.max(0.0))
}

/// The bytes to send back, or `None` to close without a word.
async fn answer(
    request: &Request,
    ip: IpAddr,
    now: tokio::time::Instant,
    shared: &Shared,
) -> Option<Vec<u8>> {
    {
        let mut counters = lock(&shared.counters);
        counters.stats.requests += 1;
        counters.stats.first_arrival =
            Some(counters.stats.first_arrival.map_or(now, |t| t.min(now)));
        counters.stats.last_arrival = Some(counters.stats.last_arrival.map_or(now, |t| t.max(now)));
        // Connections are accepted in order but recorded by concurrent tasks: keep the
        // arrivals sorted, and count the busiest one-second window that holds this one.
        let at = counters.arrivals.partition_point(|t| *t <= now);
        counters.arrivals.insert(at, now);
        let second = Duration::from_secs(1);
        let in_window = counters
            .arrivals
            .iter()
            .filter(|start| **start <= now && now.duration_since(**start) < second)
            .map(|start| {
                counters
                    .arrivals
                    .iter()
                    .filter(|t| **t >= *start && t.duration_since(*start) < second)
                    .count()
            })
            .max()
            .unwrap_or(1);
        let in_window = u32::try_from(in_window).unwrap_or(u32::MAX);
        while counters
            .arrivals
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= 2 * second)
        {
            counters.arrivals.pop_front();
        }
        counters.stats.max_calls_per_second = counters.stats.max_calls_per_second.max(in_window);
    }
    let fault = {
        let mut faults = lock(&shared.faults);
        faults.queued.pop_front().or_else(|| {
            (faults.probability > 0.0
                && rand::random::<f64>() < faults.probability
                && !faults.random.is_empty())
            .then(|| faults.random[rand::random_range(0..faults.random.len())].clone())
        })
    };
    match fault {
        Some(Fault::Status(code)) => {
            let body = html_error(&format!("{code} &mdash; Error"), "Injected failure");
            return Some(response(
                &format!("{code} Error"),
                "text/html; Charset=utf-8",
                "",
                body.as_bytes(),
            ));
        }
        Some(Fault::Hang) => {
            tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
            return None;
        }
        Some(Fault::Drop) => return None,
        Some(Fault::Garble) => {
            let junk: Vec<u8> = (0..64).map(|_| rand::random::<u8>()).collect();
            return Some(response(
                "200 Document follows",
                "application/json",
                "",
                &junk,
            ));
        }
        Some(Fault::Slow(extra)) => tokio::time::sleep(extra).await,
        Some(Fault::SlowAnswer(_) | Fault::AnswerWhenReleased(_)) | None => {}
    }
    let answer_late = match fault {
        Some(Fault::SlowAnswer(extra)) => extra,
        _ => Duration::ZERO,
    };

    if let Some(refusal) = check_login(request, ip, shared).await {
        return Some(refusal);
    }

    let mut params: Vec<(String, String)> = form_urlencoded::parse(request.query.as_bytes())
        .into_owned()
        .collect();
    let is_form = request
        .header("content-type")
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        params.extend(form_urlencoded::parse(&request.body).into_owned());
    }
    let format = if let Some((_, v)) = params.iter().find(|(n, _)| n == "json") {
        Format::Json {
            minified: v == "minified",
        }
    } else if params.iter().any(|(n, _)| n == "xml") {
        Format::Xml
    } else {
        Format::Text
    };
    let program = params
        .iter()
        .find(|(n, _)| n == "program")
        .map(|(_, v)| v.clone());
    let answer = match &program {
        None => Answer::Usage,
        Some(p)
            if !p
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') =>
        {
            Answer::Error("Invalid remote program name".to_owned())
        }
        Some(p) if !PROGRAMS.contains(&p.as_str()) => {
            Answer::Error(format!("Remote program {p} does not exist"))
        }
        Some(p) => {
            let now_unix = jiff::Timestamp::now().as_second().unsigned_abs();
            let answer = lock(&shared.state)
                .run(p, &Params(params.clone()), now_unix)
                .unwrap_or_else(|| Answer::Error(format!("Remote program {p} does not exist")));
            let mut counters = lock(&shared.counters);
            *counters
                .stats
                .calls_by_program
                .entry(p.clone())
                .or_default() += 1;
            if let Some((_, domain)) = params.iter().find(|(n, _)| n == "domain") {
                *counters
                    .stats
                    .calls_by_domain
                    .entry(domain.to_lowercase())
                    .or_default()
                    .entry(p.clone())
                    .or_default() += 1;
            }
            if p == "create-domain"
                && matches!(answer, Answer::Output(_))
                && let Some((_, domain)) = params.iter().find(|(n, _)| n == "domain")
            {
                *counters
                    .stats
                    .creates_by_domain
                    .entry(domain.to_lowercase())
                    .or_default() += 1;
            }
            answer
        }
    };
    let latency = match (&answer, &program) {
        (Answer::Output(_) | Answer::List(_) | Answer::Raw { exit: 0, .. }, Some(p)) => shared
            .config
            .latency
            .get(p)
            .copied()
            .unwrap_or_else(|| median_latency(p)),
        _ => REFUSAL_LATENCY,
    };
    tokio::time::sleep(scaled(shared, latency) + answer_late).await;
    if let Some(Fault::AnswerWhenReleased(gate)) = &fault {
        let domain = params
            .iter()
            .find(|(n, _)| n == "domain")
            .map(|(_, v)| v.as_str());
        gate.wait(domain.unwrap_or_default()).await;
    }
    let program = program.unwrap_or_default();
    let (content_type, body) = render(&program, format, &answer);
    Some(response(
        "200 Document follows",
        content_type,
        "",
        body.as_bytes(),
    ))
}

/// Basic auth as miniserv does it: 401 after a delay that grows with each failure for the user;
/// the `block_after`-th failure in a row from an address answers 403 and blocks the address.
async fn check_login(request: &Request, ip: IpAddr, shared: &Shared) -> Option<Vec<u8>> {
    let blocked_message = format!("Access denied for {ip}");
    {
        let logins = lock(&shared.logins);
        if logins
            .blocked_until
            .get(&ip)
            .is_some_and(|until| tokio::time::Instant::now() < *until)
        {
            return Some(forbidden(&blocked_message));
        }
    }
    let credentials = request
        .header("authorization")
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| base64_decode(b.trim()))
        .and_then(|raw| {
            raw.split_once(':')
                .map(|(u, p)| (u.to_owned(), p.to_owned()))
        });
    let (user, password) = credentials.clone().unwrap_or_default();
    if credentials.is_some() && user == shared.config.user && password == shared.config.password {
        let mut logins = lock(&shared.logins);
        logins.failures_by_ip.remove(&ip);
        logins.failures_by_user.remove(&user);
        return None;
    }
    let (delay, blocked) = {
        let mut logins = lock(&shared.logins);
        let by_ip = logins.failures_by_ip.entry(ip).or_default();
        *by_ip += 1;
        let blocked = *by_ip >= shared.config.block_after;
        if blocked {
            logins.failures_by_ip.remove(&ip);
            logins
                .blocked_until
                .insert(ip, tokio::time::Instant::now() + shared.config.block_for);
        }
        // An unknown user is refused at once; a known one waits longer at each failure.
        let delay = if credentials.is_some() && user == shared.config.user {
            let by_user = logins.failures_by_user.entry(user).or_default();
            *by_user += 1;
            shared.config.pass_delay * *by_user
        } else {
            Duration::ZERO
        };
        (delay, blocked)
    };
    tokio::time::sleep(scaled(shared, delay)).await;
    if blocked {
        let reason = format!(
            "{blocked_message}. The host has been blocked because of too many authentication failures."
        );
        return Some(forbidden(&reason));
    }
    let body = html_error(
        "401 &mdash; Unauthorized",
        "A password is required to access this web server. Please try again.",
    );
    Some(response(
        "401 Unauthorized",
        "text/html; Charset=utf-8",
        "WWW-authenticate: Basic realm=\"Webmin Server\"\r\n",
        body.as_bytes(),
    ))
}

fn base64_decode(input: &str) -> Option<String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(input)
        .ok()?;
    String::from_utf8(bytes).ok()
}
