//! Model constraints, checked the way Kinesis reports them: every violation listed in one
//! `ValidationException` ("2 validation errors detected: Value 'x' at 'streamName' failed to
//! satisfy constraint: Member must …; …"), at most 10 of them.

use super::error::{ApiError, ErrorKind};

const LISTED_MAX: usize = 10;

#[derive(Default)]
pub struct Violations(Vec<String>);

/// A regular expression as the model spells it, and the function that checks it.
pub type Pattern = (&'static str, fn(&str) -> bool);

/// A string shape of the model.
#[derive(Clone, Copy)]
pub struct Str {
    pub min: usize,
    pub max: usize,
    pub pattern: Option<Pattern>,
}

pub const STREAM_NAME: Str = Str {
    min: 1,
    max: 128,
    pattern: Some((NAME_PATTERN, is_name)),
};
pub const SHARD_ID: Str = Str {
    min: 1,
    max: 128,
    pattern: Some((NAME_PATTERN, is_name)),
};
pub const STREAM_ARN: Str = Str {
    min: 1,
    max: 2048,
    pattern: Some(("arn:aws.*:kinesis:.*:\\d{12}:stream/\\S+", is_stream_arn)),
};
pub const RESOURCE_ARN: Str = Str {
    min: 1,
    max: 2048,
    pattern: Some((
        "arn:aws.*:kinesis:.*:\\d{12}:.*stream/\\S+",
        is_resource_arn,
    )),
};
pub const PARTITION_KEY: Str = Str {
    min: 1,
    max: 256,
    pattern: None,
};
pub const HASH_KEY: Str = Str {
    min: 0,
    max: usize::MAX,
    pattern: Some(("0|([1-9]\\d{0,38})", is_hash_key)),
};
pub const SEQUENCE_NUMBER: Str = Str {
    min: 0,
    max: usize::MAX,
    pattern: Some(("0|([1-9]\\d{0,128})", is_sequence_number)),
};
pub const SHARD_ITERATOR: Str = Str {
    min: 1,
    max: 512,
    pattern: None,
};
pub const NEXT_TOKEN: Str = Str {
    min: 1,
    max: 1_048_576,
    pattern: None,
};
pub const TAG_KEY: Str = Str {
    min: 1,
    max: 128,
    pattern: None,
};
pub const TAG_VALUE: Str = Str {
    min: 0,
    max: 256,
    pattern: None,
};
pub const STREAM_ID: Str = Str {
    min: 1,
    max: 24,
    pattern: Some(("[a-z0-9]{20}-[a-z0-9]{3}", is_stream_id)),
};

fn is_stream_id(s: &str) -> bool {
    let lower = |p: &str| {
        p.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    s.len() == 24 && s.as_bytes()[20] == b'-' && lower(&s[..20]) && lower(&s[21..])
}

const NAME_PATTERN: &str = "[a-zA-Z0-9_.-]+";

impl Violations {
    pub fn push(&mut self, value: &str, path: &str, constraint: &str) {
        self.0.push(format!(
            "Value {value} at '{path}' failed to satisfy constraint: Member must {constraint}"
        ));
    }

    pub fn required<T>(&mut self, path: &str, value: Option<T>) -> Option<T> {
        if value.is_none() {
            self.0.push(format!(
                "Value null at '{path}' failed to satisfy constraint: Member must not be null"
            ));
        }
        value
    }

    /// Checks a string's length (in characters, as Java counts them closely enough for
    /// these shapes) and pattern.
    pub fn string(&mut self, path: &str, value: Option<&str>, shape: Str) {
        let Some(v) = value else { return };
        let chars = v.chars().count();
        let shown = format!("'{v}'");
        if chars < shape.min {
            self.push(
                &shown,
                path,
                &format!("have length greater than or equal to {}", shape.min),
            );
        }
        if chars > shape.max {
            self.push(
                &shown,
                path,
                &format!("have length less than or equal to {}", shape.max),
            );
        }
        if let Some((pattern, matches)) = shape.pattern
            && !matches(v)
        {
            self.push(
                &shown,
                path,
                &format!("satisfy regular expression pattern: {pattern}"),
            );
        }
    }

    pub fn int(&mut self, path: &str, value: Option<i64>, min: Option<i64>, max: Option<i64>) {
        let Some(v) = value else { return };
        if let Some(min) = min
            && v < min
        {
            self.push(
                &format!("'{v}'"),
                path,
                &format!("have value greater than or equal to {min}"),
            );
        }
        if let Some(max) = max
            && v > max
        {
            self.push(
                &format!("'{v}'"),
                path,
                &format!("have value less than or equal to {max}"),
            );
        }
    }

    pub fn one_of(&mut self, path: &str, value: Option<&str>, allowed: &[&str]) {
        if let Some(v) = value
            && !allowed.contains(&v)
        {
            self.push(
                &format!("'{v}'"),
                path,
                &format!("satisfy enum value set: [{}]", allowed.join(", ")),
            );
        }
    }

    /// A list's or map's entry count.
    pub fn count(&mut self, path: &str, shown: &str, len: usize, min: usize, max: usize) {
        if len < min {
            self.push(
                shown,
                path,
                &format!("have length greater than or equal to {min}"),
            );
        }
        if len > max {
            self.push(
                shown,
                path,
                &format!("have length less than or equal to {max}"),
            );
        }
    }

    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            return Ok(());
        }
        let n = self.0.len();
        let listed: Vec<&str> = self.0.iter().take(LISTED_MAX).map(String::as_str).collect();
        let noun = if n == 1 { "error" } else { "errors" };
        Err(ApiError::new(
            ErrorKind::Validation,
            format!("{n} validation {noun} detected: {}", listed.join("; ")),
        ))
    }
}

/// How the model shows a blob in a validation message.
pub fn blob_shown(len: usize) -> String {
    format!("'java.nio.HeapByteBuffer[pos=0 lim={len} cap={len}]'")
}

pub fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn is_hash_key(s: &str) -> bool {
    is_decimal(s, 39)
}

fn is_sequence_number(s: &str) -> bool {
    is_decimal(s, 129)
}

fn is_decimal(s: &str, digits_max: usize) -> bool {
    s == "0"
        || (!s.is_empty()
            && s.len() <= digits_max
            && !s.starts_with('0')
            && s.bytes().all(|b| b.is_ascii_digit()))
}

/// The parts of an ARN `arn:<partition>:kinesis:<region>:<account>:<resource>`.
pub struct Arn<'a> {
    pub region: &'a str,
    pub account: &'a str,
    pub resource: &'a str,
}

pub fn parse_arn(s: &str) -> Option<Arn<'_>> {
    let mut parts = s.splitn(6, ':');
    let (arn, partition, service) = (parts.next()?, parts.next()?, parts.next()?);
    let (region, account, resource) = (parts.next()?, parts.next()?, parts.next()?);
    let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
    if arn != "arn" || !partition.starts_with("aws") || service != "kinesis" || !account_ok {
        return None;
    }
    Some(Arn {
        region,
        account,
        resource,
    })
}

fn is_stream_arn(s: &str) -> bool {
    parse_arn(s).is_some_and(|a| {
        a.resource
            .strip_prefix("stream/")
            .is_some_and(|n| !n.is_empty() && !n.contains(char::is_whitespace))
    })
}

fn is_resource_arn(s: &str) -> bool {
    parse_arn(s).is_some_and(|a| {
        a.resource.find("stream/").is_some_and(|i| {
            a.resource.len() > i + 7 && !a.resource[i + 7..].contains(char::is_whitespace)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(f: impl FnOnce(&mut Violations), expected: &str) {
        let mut v = Violations::default();
        f(&mut v);
        let got = v.finish().err().and_then(|e| e.message).unwrap_or_default();
        assert_eq!(got, expected);
    }

    #[test]
    fn messages_read_as_kinesis_writes_them() {
        check(
            |v| v.string("streamName", Some("bad name"), STREAM_NAME),
            "1 validation error detected: Value 'bad name' at 'streamName' failed to satisfy \
             constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+",
        );
        check(
            |v| {
                v.required::<&str>("streamName", None);
                v.int("shardCount", Some(0), Some(1), None);
            },
            "2 validation errors detected: Value null at 'streamName' failed to satisfy \
             constraint: Member must not be null; Value '0' at 'shardCount' failed to satisfy \
             constraint: Member must have value greater than or equal to 1",
        );
        check(|v| v.string("streamName", Some("ok"), STREAM_NAME), "");
    }

    #[test]
    fn arns_parse() {
        assert!(is_stream_arn(
            "arn:aws:kinesis:us-east-1:000000000000:stream/s"
        ));
        assert!(!is_stream_arn("arn:aws:kinesis:us-east-1:0000:stream/s"));
        assert!(!is_stream_arn(
            "arn:aws:sqs:us-east-1:000000000000:stream/s"
        ));
        assert!(is_resource_arn(
            "arn:aws:kinesis:us-east-1:000000000000:stream/s/consumer/c:1"
        ));
    }
}
