//! AWS Signature Version 4, both ways: the gateway signs its Bedrock calls with the
//! route's credentials, and checks the signatures SigV4 clients (boto3, the aws cli)
//! make with a gateway-issued key pair.

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use std::time::SystemTime;

/// Bedrock's SigV4 signing name (boto3's `bedrock-runtime` client signs as `bedrock`).
pub const BEDROCK_SERVICE: &str = "bedrock";

#[derive(Debug, thiserror::Error)]
pub enum SigV4Error {
    #[error("malformed AWS4-HMAC-SHA256 authorization: {0}")]
    Malformed(&'static str),
    #[error("x-amz-date `{0}` is not a SigV4 timestamp")]
    BadDate(String),
    #[error("signing failed: {0}")]
    Signing(String),
}

pub struct Signer<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub session_token: Option<&'a str>,
    pub region: &'a str,
    pub service: &'a str,
}

impl Signer<'_> {
    /// The signature and the headers to add for a request at `time`.
    pub fn sign(
        &self,
        method: &Method,
        url: &str,
        headers: &HeaderMap,
        body: &[u8],
        time: SystemTime,
    ) -> Result<(String, Vec<(String, String)>), SigV4Error> {
        let identity: Identity = Credentials::new(
            self.access_key_id,
            self.secret_access_key,
            self.session_token.map(str::to_string),
            None,
            "ai-gateway",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(self.region)
            .name(self.service)
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| SigV4Error::Signing(e.to_string()))?
            .into();
        let header_pairs = headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)));
        let signable = SignableRequest::new(
            method.as_str(),
            url,
            header_pairs,
            SignableBody::Bytes(body),
        )
        .map_err(|e| SigV4Error::Signing(e.to_string()))?;
        let (instructions, signature) = sign(signable, &params)
            .map_err(|e| SigV4Error::Signing(e.to_string()))?
            .into_parts();
        let added = instructions
            .headers()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Ok((signature, added))
    }

    /// Signs an outgoing request in place.
    pub fn apply(
        &self,
        method: &Method,
        url: &str,
        headers: &mut HeaderMap,
        body: &[u8],
    ) -> Result<(), SigV4Error> {
        let (_, added) = self.sign(method, url, headers, body, SystemTime::now())?;
        for (name, value) in added {
            if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
                headers.insert(n, v);
            }
        }
        Ok(())
    }
}

/// The parts of a caller's `Authorization: AWS4-HMAC-SHA256 …` header.
#[derive(Debug, PartialEq, Eq)]
pub struct PresentedSignature<'a> {
    pub access_key_id: &'a str,
    pub region: &'a str,
    pub service: &'a str,
    pub signed_headers: Vec<&'a str>,
    pub signature: &'a str,
}

pub fn parse_authorization(value: &str) -> Result<PresentedSignature<'_>, SigV4Error> {
    let rest = value
        .strip_prefix("AWS4-HMAC-SHA256")
        .ok_or(SigV4Error::Malformed("not AWS4-HMAC-SHA256"))?;
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or(SigV4Error::Malformed("a part is not key=value"))?;
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => signature = Some(v),
            _ => {}
        }
    }
    // Credential=AKID/20261126/us-east-1/bedrock/aws4_request
    let mut scope = credential
        .ok_or(SigV4Error::Malformed("no Credential"))?
        .split('/');
    let access_key_id = scope
        .next()
        .filter(|s| !s.is_empty())
        .ok_or(SigV4Error::Malformed("no access key id"))?;
    let _date = scope
        .next()
        .ok_or(SigV4Error::Malformed("no date in scope"))?;
    let region = scope
        .next()
        .ok_or(SigV4Error::Malformed("no region in scope"))?;
    let service = scope
        .next()
        .ok_or(SigV4Error::Malformed("no service in scope"))?;
    Ok(PresentedSignature {
        access_key_id,
        region,
        service,
        signed_headers: signed
            .ok_or(SigV4Error::Malformed("no SignedHeaders"))?
            .split(';')
            .collect(),
        signature: signature.ok_or(SigV4Error::Malformed("no Signature"))?,
    })
}

/// `20261126T103000Z` → the instant it names.
pub fn parse_amz_date(value: &str) -> Result<SystemTime, SigV4Error> {
    let bad = || SigV4Error::BadDate(value.to_string());
    if value.len() != 16 || !value.ends_with('Z') || value.as_bytes().get(8) != Some(&b'T') {
        return Err(bad());
    }
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &value[0..4],
        &value[4..6],
        &value[6..8],
        &value[9..11],
        &value[11..13],
        &value[13..15]
    );
    humantime::parse_rfc3339(&rfc3339).map_err(|_| bad())
}

/// Recomputes the signature a caller made over exactly the headers it signed.
pub fn signature_matches(
    presented: &PresentedSignature<'_>,
    secret: &str,
    method: &Method,
    url: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<bool, SigV4Error> {
    let date = headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or(SigV4Error::Malformed("no x-amz-date"))?;
    let time = parse_amz_date(date)?;
    let mut signed = HeaderMap::new();
    for name in &presented.signed_headers {
        for value in headers.get_all(*name) {
            if let Ok(n) = HeaderName::try_from(*name) {
                signed.append(n, value.clone());
            }
        }
    }
    let session_token = headers
        .get("x-amz-security-token")
        .and_then(|v| v.to_str().ok());
    let signer = Signer {
        access_key_id: presented.access_key_id,
        secret_access_key: secret,
        session_token,
        region: presented.region,
        service: presented.service,
    };
    let (expected, _) = signer.sign(method, url, &signed, body, time)?;
    Ok(bool::from(subtle::ConstantTimeEq::ct_eq(
        expected.as_bytes(),
        presented.signature.as_bytes(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request boto3 made, recorded with its signature: the gateway must agree.
    #[test]
    fn a_recorded_boto3_signature_verifies_and_a_wrong_secret_does_not() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/clients/boto3_converse.json"
        );
        let recorded: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
        let mut headers = HeaderMap::new();
        for (k, v) in recorded["headers"].as_object().expect("headers") {
            headers.insert(
                HeaderName::try_from(k.to_ascii_lowercase()).expect("name"),
                HeaderValue::try_from(v.as_str().expect("value")).expect("value"),
            );
        }
        let host = headers["host"].to_str().expect("host").to_string();
        let url = format!("http://{host}{}", recorded["path"].as_str().expect("path"));
        let body = recorded["body_raw"]
            .as_str()
            .expect("raw body")
            .as_bytes()
            .to_vec();
        let auth = headers["authorization"].to_str().expect("auth").to_string();
        let presented = parse_authorization(&auth).expect("parses");
        assert_eq!(presented.service, "bedrock");
        let secret = recorded["sigv4"]["secret_access_key"]
            .as_str()
            .or_else(|| recorded["sigv4"]["secret"].as_str())
            .expect("the fixture records the secret it was signed with");
        assert!(
            signature_matches(&presented, secret, &Method::POST, &url, &headers, &body)
                .expect("computes")
        );
        assert!(
            !signature_matches(&presented, "wrong", &Method::POST, &url, &headers, &body)
                .expect("computes")
        );
        assert!(
            !signature_matches(&presented, secret, &Method::POST, &url, &headers, b"{}")
                .expect("computes")
        );
    }

    #[test]
    fn amz_dates_parse() {
        let t = parse_amz_date("20261126T103000Z").expect("parses");
        assert_eq!(
            humantime::format_rfc3339_seconds(t).to_string(),
            "2026-11-26T10:30:00Z"
        );
        assert!(parse_amz_date("2026-11-26").is_err());
    }
}
