//! StartStreamEncryption and StopStreamEncryption: server-side encryption of the records
//! written while it is on, with keys from the key store (`control::keys`).

use serde::Deserialize;

use super::streams::find_mut;
use super::{ApiResult, check_stream_ref, empty, parse, stream_name};
use crate::api::error::{ApiError, ErrorKind};
use crate::api::validate::{Str, Violations};
use crate::control::Encryption;
use crate::control::count_last_day;
use crate::service::{Kinesis, require_active};

/// Successful key changes allowed per rolling 24 hours, for starts and stops together.
const CHANGES_PER_DAY_MAX: usize = 25;
const KEY_ID: Str = Str {
    min: 1,
    max: 2048,
    pattern: None,
};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EncryptionInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    encryption_type: Option<String>,
    key_id: Option<String>,
}

pub fn start_stream_encryption(svc: &Kinesis, body: &[u8]) -> ApiResult<Vec<u8>> {
    change(svc, body, true)
}

pub fn stop_stream_encryption(svc: &Kinesis, body: &[u8]) -> ApiResult<Vec<u8>> {
    change(svc, body, false)
}

fn change(svc: &Kinesis, body: &[u8], start: bool) -> ApiResult<Vec<u8>> {
    let input: EncryptionInput = parse(body)?;
    let mut v = Violations::default();
    check_stream_ref(
        &mut v,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    );
    let kind = v.required("encryptionType", input.encryption_type.as_deref());
    v.one_of("encryptionType", kind, &["NONE", "KMS"]);
    let key_id = v.required("keyId", input.key_id.as_deref());
    v.string("keyId", key_id, KEY_ID);
    v.finish()?;
    let key_id = key_id.expect("checked");
    if kind != Some("KMS") {
        return Err(ApiError::invalid_argument("EncryptionType must be KMS."));
    }
    let name = stream_name(
        svc,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    let key_number = if start {
        Some(svc.keys.resolve(key_id).ok_or_else(|| {
            ApiError::new(
                ErrorKind::KmsNotFound,
                format!("Key '{key_id}' does not exist"),
            )
        })?)
    } else {
        None
    };
    let now = svc.now_ms();
    let mut registry = svc.write();
    let stream = find_mut(svc, &mut registry, &name)?;
    require_active(stream, now, svc.account())?;
    if count_last_day(&mut stream.meta.encryption_changes_ms, now) >= CHANGES_PER_DAY_MAX {
        return Err(ApiError::new(
            ErrorKind::LimitExceeded,
            format!(
                "Stream {name} under account {} has changed its encryption {CHANGES_PER_DAY_MAX} times in the last 24 hours.",
                svc.account()
            ),
        ));
    }
    stream.meta.encryption = key_number.map(|key_number| Encryption {
        key_id: key_id.to_owned(),
        key_number,
    });
    stream.meta.encryption_changes_ms.push(now);
    stream.begin_update(now, svc.config.state_delay_ms as i64);
    svc.persist(&registry)?;
    empty()
}
