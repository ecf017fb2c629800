//! Stream tags: the legacy stream operations (AddTagsToStream, RemoveTagsFromStream,
//! ListTagsForStream) and the ARN-addressed ones (TagResource, UntagResource,
//! ListTagsForResource).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::json;

use super::consumers::{Resource, find_consumer, resource};
use super::streams::{find, find_mut, too_many_tags};
use super::{ApiResult, check_stream_ref, empty, parse, stream_name};
use crate::api::error::ApiError;
use crate::api::validate::{self, Violations};
use crate::limits;
use crate::service::{Kinesis, Registry};

/// Model checks of a tag map, plus the character rule Kinesis applies.
pub fn check_tags(v: &mut Violations, tags: &BTreeMap<String, String>) {
    v.count("tags", "'{…}'", tags.len(), 1, 200);
    for (key, value) in tags {
        v.string("tags.key", Some(key), validate::TAG_KEY);
        v.string("tags.value", Some(value), validate::TAG_VALUE);
    }
}

fn check_tag_characters(tags: &BTreeMap<String, String>) -> ApiResult<()> {
    let ok = |s: &str| {
        s.chars()
            .all(|c| c.is_alphanumeric() || c.is_whitespace() || "_./=+-%@:".contains(c))
    };
    if tags.iter().all(|(k, v)| ok(k) && ok(v)) {
        return Ok(());
    }
    Err(ApiError::invalid_argument(
        "Some tags contain invalid characters. Valid characters: Unicode letters, digits, white space, _ . / = + - % @.",
    ))
}

fn check_keys(v: &mut Violations, keys: &[String]) {
    v.count("tagKeys", "'[…]'", keys.len(), 1, 50);
    for key in keys {
        v.string("tagKeys.member", Some(key), validate::TAG_KEY);
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AddTagsInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    tags: Option<BTreeMap<String, String>>,
}

pub fn add_tags_to_stream(svc: &Kinesis, body: &[u8]) -> ApiResult<Vec<u8>> {
    let input: AddTagsInput = parse(body)?;
    let mut v = Violations::default();
    check_stream_ref(
        &mut v,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    );
    let tags = v.required("tags", input.tags.as_ref());
    if let Some(tags) = tags {
        check_tags(&mut v, tags);
    }
    v.finish()?;
    let name = stream_name(
        svc,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    add_tags(svc, &Resource::Stream(name), tags.expect("checked"))
}

/// Runs `f` on the tags of the stream or consumer `resource` names.
fn with_tags<T>(
    svc: &Kinesis,
    registry: &mut Registry,
    resource: &Resource,
    f: impl FnOnce(&mut BTreeMap<String, String>) -> T,
) -> ApiResult<T> {
    match resource {
        Resource::Stream(name) => Ok(f(&mut find_mut(svc, registry, name)?.meta.tags)),
        Resource::Consumer {
            stream,
            name,
            created_s,
        } => {
            let s = find_mut(svc, registry, stream)?;
            Ok(f(&mut find_consumer(svc, s, name, *created_s)?.tags))
        }
    }
}

fn add_tags(
    svc: &Kinesis,
    resource: &Resource,
    tags: &BTreeMap<String, String>,
) -> ApiResult<Vec<u8>> {
    check_tag_characters(tags)?;
    let mut registry = svc.write();
    let fits = with_tags(svc, &mut registry, resource, |current| {
        let new_keys = tags.keys().filter(|k| !current.contains_key(*k)).count();
        if current.len() + new_keys > limits::TAGS_PER_STREAM_MAX {
            return false;
        }
        current.extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
        true
    })?;
    if !fits {
        let name = match resource {
            Resource::Stream(name) | Resource::Consumer { name, .. } => name,
        };
        return Err(too_many_tags(name, svc.account()));
    }
    svc.persist(&registry)?;
    empty()
}

fn remove_tags(svc: &Kinesis, resource: &Resource, keys: &[String]) -> ApiResult<Vec<u8>> {
    let mut registry = svc.write();
    with_tags(svc, &mut registry, resource, |current| {
        for key in keys {
            current.remove(key);
        }
    })?;
    svc.persist(&registry)?;
    empty()
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RemoveTagsInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    tag_keys: Option<Vec<String>>,
}

pub fn remove_tags_from_stream(svc: &Kinesis, body: &[u8]) -> ApiResult<Vec<u8>> {
    let input: RemoveTagsInput = parse(body)?;
    let mut v = Violations::default();
    check_stream_ref(
        &mut v,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    );
    let keys = v.required("tagKeys", input.tag_keys.as_deref());
    if let Some(keys) = keys {
        check_keys(&mut v, keys);
    }
    v.finish()?;
    let name = stream_name(
        svc,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    remove_tags(svc, &Resource::Stream(name), keys.expect("checked"))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListTagsInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    exclusive_start_tag_key: Option<String>,
    limit: Option<i64>,
}

pub fn list_tags_for_stream(svc: &Kinesis, body: &[u8]) -> ApiResult<Vec<u8>> {
    let input: ListTagsInput = parse(body)?;
    let mut v = Violations::default();
    check_stream_ref(
        &mut v,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    );
    v.string(
        "exclusiveStartTagKey",
        input.exclusive_start_tag_key.as_deref(),
        validate::TAG_KEY,
    );
    v.int("limit", input.limit, Some(1), Some(50));
    v.finish()?;
    let name = stream_name(
        svc,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    let limit = input
        .limit
        .map_or(limits::LIST_TAGS_DEFAULT, |l| l as usize);
    let registry = svc.read();
    let stream = find(svc, &registry, &name)?;
    let after = input.exclusive_start_tag_key.as_deref();
    let mut tags = stream
        .meta
        .tags
        .iter()
        .filter(|(k, _)| after.is_none_or(|a| k.as_str() > a));
    let page: Vec<_> = tags
        .by_ref()
        .take(limit)
        .map(|(k, v)| json!({ "Key": k, "Value": v }))
        .collect();
    let more = tags.next().is_some();
    super::json(json!({ "Tags": page, "HasMoreTags": more }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagResourceInput {
    #[serde(rename = "ResourceARN")]
    resource_arn: Option<String>,
    tags: Option<BTreeMap<String, String>>,
    tag_keys: Option<Vec<String>>,
}

pub fn tag_resource(svc: &Kinesis, body: &[u8]) -> ApiResult<Vec<u8>> {
    let input: TagResourceInput = parse(body)?;
    let mut v = Violations::default();
    let arn = v.required("resourceARN", input.resource_arn.as_deref());
    v.string("resourceARN", arn, validate::RESOURCE_ARN);
    let tags = v.required("tags", input.tags.as_ref());
    if let Some(tags) = tags {
        check_tags(&mut v, tags);
    }
    v.finish()?;
    let resource = resource(svc, arn.expect("checked"))?;
    add_tags(svc, &resource, tags.expect("checked"))
}

pub fn untag_resource(svc: &Kinesis, body: &[u8]) -> ApiResult<Vec<u8>> {
    let input: TagResourceInput = parse(body)?;
    let mut v = Violations::default();
    let arn = v.required("resourceARN", input.resource_arn.as_deref());
    v.string("resourceARN", arn, validate::RESOURCE_ARN);
    let keys = v.required("tagKeys", input.tag_keys.as_deref());
    if let Some(keys) = keys {
        check_keys(&mut v, keys);
    }
    v.finish()?;
    let resource = resource(svc, arn.expect("checked"))?;
    remove_tags(svc, &resource, keys.expect("checked"))
}

pub fn list_tags_for_resource(svc: &Kinesis, body: &[u8]) -> ApiResult<Vec<u8>> {
    let input: TagResourceInput = parse(body)?;
    let mut v = Violations::default();
    let arn = v.required("resourceARN", input.resource_arn.as_deref());
    v.string("resourceARN", arn, validate::RESOURCE_ARN);
    v.finish()?;
    let resource = resource(svc, arn.expect("checked"))?;
    let mut registry = svc.write();
    let tags = with_tags(svc, &mut registry, &resource, |tags| {
        tags.iter()
            .map(|(k, v)| json!({ "Key": k, "Value": v }))
            .collect::<Vec<_>>()
    })?;
    super::json(json!({ "Tags": tags }))
}
