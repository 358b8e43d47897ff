//! Dynamic broker configs (IncrementalAlterConfigs on a BROKER resource): checked and
//! turned into config records for the cluster-wide defaults or one broker.
//!
//! Invariant: only `DYNAMIC_BROKER_KEYS` with valid values are ever written; a refused
//! request writes nothing.

use super::{Decision, config_changes};
use kavka_metadata::{ConfigResource, MetadataImage};
use kavka_model::{BrokerId, DynamicBrokerConfig, ErrorCode, KafkaError};
use std::collections::BTreeMap;

/// Sets and removes dynamic configs of `broker` (None: cluster-wide); the reply is the
/// resource's configs afterwards.
pub fn alter_broker_configs(
    image: &MetadataImage,
    broker: Option<BrokerId>,
    set: &BTreeMap<String, String>,
    delete: &[String],
) -> Decision<Result<BTreeMap<String, String>, KafkaError>> {
    let refuse = |e: KafkaError| Decision {
        records: vec![],
        reply: Err(e),
    };
    let invalid =
        |e: kavka_model::ConfigError| KafkaError::new(ErrorCode::InvalidConfig, e.to_string());
    if let Some(id) = broker.filter(|id| id.0 < 0) {
        return refuse(KafkaError::new(
            ErrorCode::InvalidRequest,
            format!("{} is not a broker id", id.0),
        ));
    }
    for k in delete {
        if let Err(e) = DynamicBrokerConfig::check_key(k) {
            return refuse(invalid(e));
        }
    }
    for (k, v) in set {
        if let Err(e) = DynamicBrokerConfig::check(k, v) {
            return refuse(invalid(e));
        }
    }
    let resource = broker.map_or(ConfigResource::Cluster, ConfigResource::Broker);
    let mut configs = image.configs(&resource);
    let records = config_changes(&resource, &mut configs, set, delete);
    Decision {
        records,
        reply: Ok(configs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn dynamic_configs_are_stored_per_broker_or_cluster_wide() {
        let img = MetadataImage::empty();
        let d = alter_broker_configs(&img, None, &map(&[("num.partitions", "3")]), &[]);
        assert_eq!(d.reply, Ok(map(&[("num.partitions", "3")])));
        let img = img.replay(img.offset + 1, &d.records).0;
        assert_eq!(
            img.configs(&ConfigResource::Cluster),
            map(&[("num.partitions", "3")])
        );
        let d = alter_broker_configs(
            &img,
            Some(BrokerId(2)),
            &map(&[("auto.create.topics.enable", "false")]),
            &[],
        );
        let img = img.replay(img.offset + 1, &d.records).0;
        assert_eq!(
            img.configs(&ConfigResource::Broker(BrokerId(2))),
            map(&[("auto.create.topics.enable", "false")])
        );
        let d = alter_broker_configs(&img, None, &BTreeMap::new(), &["num.partitions".into()]);
        let img = img.replay(img.offset + 1, &d.records).0;
        assert!(img.configs(&ConfigResource::Cluster).is_empty());

        // Refusals write nothing: (broker, set, delete, code, words).
        let table = [
            (
                None,
                map(&[("num.partitions", "0")]),
                vec![],
                ErrorCode::InvalidConfig,
                "at least 1",
            ),
            (
                None,
                map(&[("broker.rack", "x")]),
                vec![],
                ErrorCode::InvalidConfig,
                "can change while running",
            ),
            (
                None,
                map(&[]),
                vec!["node.id".to_string()],
                ErrorCode::InvalidConfig,
                "node.id",
            ),
            (
                Some(BrokerId(-5)),
                map(&[("num.partitions", "2")]),
                vec![],
                ErrorCode::InvalidRequest,
                "not a broker id",
            ),
        ];
        for (broker, set, delete, code, words) in table {
            let d = alter_broker_configs(&img, broker, &set, &delete);
            assert!(d.records.is_empty(), "{set:?}");
            let e = d.reply.unwrap_err();
            assert_eq!(e.code, code, "{e}");
            assert!(e.message.contains(words), "{e}");
        }
    }
}
