//! Asking a DNS server what it serves, over UDP, without recursion or caching: the only way to
//! know that a provider's API change has reached its answers.

use std::net::SocketAddr;
use std::time::Duration;

use drover_core::{RecordType, canonical_content};
use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType as WireType};
use tokio::net::UdpSocket;

use crate::DnsError;

/// What a server answered for one name and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedAnswer {
    /// `NOERROR`, `NXDOMAIN`, `REFUSED`…
    pub code: String,
    pub authoritative: bool,
    /// Records of the asked type in canonical form, sorted.
    pub records: Vec<String>,
    pub ttl: Option<u32>,
}

/// The mnemonic `dig` shows for a response code.
fn rcode_name(code: u16) -> String {
    match code {
        0 => "NOERROR".to_owned(),
        1 => "FORMERR".to_owned(),
        2 => "SERVFAIL".to_owned(),
        3 => "NXDOMAIN".to_owned(),
        4 => "NOTIMP".to_owned(),
        5 => "REFUSED".to_owned(),
        other => format!("RCODE{other}"),
    }
}

fn wire_type(rtype: RecordType) -> WireType {
    match rtype {
        RecordType::A => WireType::A,
        RecordType::Aaaa => WireType::AAAA,
        RecordType::Caa => WireType::CAA,
        RecordType::Cname => WireType::CNAME,
        RecordType::Mx => WireType::MX,
        RecordType::Ns => WireType::NS,
        RecordType::Srv => WireType::SRV,
        RecordType::Txt => WireType::TXT,
    }
}

/// Queries `server` for `name` (absolute, without the trailing dot) and `rtype`.
pub async fn query_served(
    server: SocketAddr,
    name: &str,
    rtype: RecordType,
    timeout: Duration,
) -> Result<ServedAnswer, DnsError> {
    let unreachable = |message: String| DnsError::Unreachable {
        url: format!("dns://{server}"),
        message,
    };
    let fqdn = Name::from_ascii(format!("{name}."))
        .map_err(|e| DnsError::Config(format!("cannot query '{name}': {e}")))?;
    let mut query = Message::query();
    query.metadata.recursion_desired = false;
    query.add_query(Query::query(fqdn, wire_type(rtype)));
    let bytes = query
        .to_vec()
        .map_err(|e| DnsError::Config(format!("cannot encode a query for '{name}': {e}")))?;
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .map_err(|_| DnsError::Config("bind address".into()))?;
    let socket = UdpSocket::bind(bind)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    socket
        .connect(server)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    socket
        .send(&bytes)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let mut buffer = vec![0u8; 65_535];
    let response = loop {
        let received = tokio::time::timeout(timeout, socket.recv(&mut buffer))
            .await
            .map_err(|_| unreachable(format!("no answer within {timeout:?}")))?
            .map_err(|e| unreachable(e.to_string()))?;
        let message = Message::from_vec(&buffer[..received]).map_err(|e| DnsError::Malformed {
            status: 0,
            detail: format!("DNS answer: {e}"),
        })?;
        // A stray datagram with another id is not our answer.
        if message.metadata.id == query.metadata.id {
            break message;
        }
    };
    let wanted = wire_type(rtype);
    let mut ttl = None;
    let mut records = Vec::new();
    for record in response
        .answers
        .iter()
        .filter(|r| r.record_type() == wanted)
    {
        ttl = Some(record.ttl);
        let text = record.data.to_string();
        records.push(canonical_content(rtype, &text).unwrap_or(text));
    }
    records.sort();
    Ok(ServedAnswer {
        code: rcode_name(u16::from(response.metadata.response_code)),
        authoritative: response.metadata.authoritative,
        records,
        ttl,
    })
}
