//! `bramble produce TOPIC`: lines from standard input become records, like
//! kafka-console-producer.sh (with `--key-separator` for keyed records).

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{MetadataRequest, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::client::{partition_for_key, Client};

/// Options of `bramble produce`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Topic to write to.
    topic: String,
    /// A broker's host:port.
    #[arg(long = "bootstrap-server", default_value = "127.0.0.1:9092")]
    bootstrap_server: String,
    /// Split each line at the first occurrence of this into key and value.
    #[arg(long = "key-separator")]
    key_separator: Option<String>,
    /// Always write to this partition (default: by key hash, or spread when unkeyed).
    #[arg(long)]
    partition: Option<i32>,
    /// -1 (all), 0 or 1.
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    acks: i16,
    /// Records per request.
    #[arg(long = "batch-size", default_value_t = 500)]
    batch_size: usize,
}

/// Read stdin to the end, sending records in batches.
pub async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(matches!(args.acks, -1 | 1), "--acks must be -1 or 1");
    anyhow::ensure!(args.batch_size > 0, "--batch-size must be at least 1");
    let mut client = Client::connect(&args.bootstrap_server).await?;
    let topic_name = TopicName(StrBytes::from_string(args.topic.clone()));
    let metadata = client
        .send(
            MetadataRequest::default()
                .with_topics(Some(vec![
                    MetadataRequestTopic::default().with_name(Some(topic_name.clone()))
                ]))
                .with_allow_auto_topic_creation(true),
            9,
        )
        .await?;
    let topic = metadata
        .topics
        .first()
        .ok_or_else(|| anyhow::anyhow!("no metadata for {}", args.topic))?;
    anyhow::ensure!(
        topic.error_code == 0,
        "topic {}: error {}",
        args.topic,
        topic.error_code
    );
    let partitions = topic.partitions.len() as i32;
    anyhow::ensure!(partitions > 0, "topic {} has no partitions", args.topic);
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut pending: BTreeMap<i32, Vec<Record>> = BTreeMap::new();
    let mut count = 0usize;
    let mut next_unkeyed = 0i32;
    while let Some(line) = lines.next_line().await? {
        let (key, value) = match &args.key_separator {
            Some(separator) => match line.split_once(separator.as_str()) {
                Some((k, v)) => (Some(Bytes::from(k.to_string())), Bytes::from(v.to_string())),
                None => (None, Bytes::from(line)),
            },
            None => (None, Bytes::from(line)),
        };
        let partition = match (args.partition, &key) {
            (Some(p), _) => p,
            (None, Some(key)) => partition_for_key(key, partitions),
            (None, None) => {
                next_unkeyed = (next_unkeyed + 1) % partitions;
                next_unkeyed
            }
        };
        pending
            .entry(partition)
            .or_default()
            .push(record(key, value));
        count += 1;
        if count % args.batch_size == 0 {
            send(&mut client, &topic_name, &mut pending, args.acks).await?;
        }
    }
    send(&mut client, &topic_name, &mut pending, args.acks).await?;
    Ok(())
}

fn record(key: Option<Bytes>, value: Bytes) -> Record {
    Record {
        transactional: false,
        delete_horizon: false,
        control: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: crate::broker::now_ms(),
        key,
        value: Some(value),
        headers: Default::default(),
    }
}

async fn send(
    client: &mut Client,
    topic: &TopicName,
    pending: &mut BTreeMap<i32, Vec<Record>>,
    acks: i16,
) -> anyhow::Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let mut partition_data = Vec::new();
    for (partition, mut records) in std::mem::take(pending) {
        for (i, record) in records.iter_mut().enumerate() {
            record.offset = i as i64;
        }
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, &records, &options)?;
        partition_data.push(
            PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(buf.freeze())),
        );
    }
    let request = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic.clone())
            .with_partition_data(partition_data)]);
    let response = client.send(request, 8).await?;
    for topic in response.responses {
        for p in topic.partition_responses {
            anyhow::ensure!(
                p.error_code == 0,
                "partition {} refused the records: error {} {}",
                p.index,
                p.error_code,
                p.error_message.as_ref().map(|m| m.as_str()).unwrap_or("")
            );
        }
    }
    Ok(())
}
