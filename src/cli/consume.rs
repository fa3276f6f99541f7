//! `bramble consume TOPIC`: print records, like kafka-console-consumer.sh.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{FetchRequest, ListOffsetsRequest, MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;

use super::client::Client;

/// Options of `bramble consume`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Topic to read.
    topic: String,
    /// A broker's host:port.
    #[arg(long = "bootstrap-server", default_value = "127.0.0.1:9092")]
    bootstrap_server: String,
    /// Start at the oldest record instead of the end.
    #[arg(long = "from-beginning")]
    from_beginning: bool,
    /// Stop after this many records.
    #[arg(long = "max-messages")]
    max_messages: Option<u64>,
    /// Stop when no record arrived for this long.
    #[arg(long = "timeout-ms")]
    timeout_ms: Option<u64>,
    /// Print `key<TAB>value`.
    #[arg(long = "print-key")]
    print_key: bool,
}

/// Fetch from every partition in turn, printing values, until a stop condition.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut client = Client::connect(&args.bootstrap_server).await?;
    let topic = TopicName(StrBytes::from_string(args.topic.clone()));
    let metadata = client
        .send(
            MetadataRequest::default()
                .with_topics(Some(vec![
                    MetadataRequestTopic::default().with_name(Some(topic.clone()))
                ]))
                .with_allow_auto_topic_creation(false),
            9,
        )
        .await?;
    let meta = metadata
        .topics
        .first()
        .ok_or_else(|| anyhow::anyhow!("no metadata for {}", args.topic))?;
    anyhow::ensure!(
        meta.error_code == 0,
        "topic {}: error {}",
        args.topic,
        meta.error_code
    );
    let partitions: Vec<i32> = meta.partitions.iter().map(|p| p.partition_index).collect();
    let start = if args.from_beginning { -2 } else { -1 };
    let offsets_response = client
        .send(
            ListOffsetsRequest::default()
                .with_replica_id((-1).into())
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(topic.clone())
                    .with_partitions(
                        partitions
                            .iter()
                            .map(|&p| {
                                ListOffsetsPartition::default()
                                    .with_partition_index(p)
                                    .with_timestamp(start)
                            })
                            .collect(),
                    )]),
            5,
        )
        .await?;
    let mut positions: BTreeMap<i32, i64> = BTreeMap::new();
    for t in offsets_response.topics {
        for p in t.partitions {
            anyhow::ensure!(
                p.error_code == 0,
                "partition {}: error {}",
                p.partition_index,
                p.error_code
            );
            positions.insert(p.partition_index, p.offset);
        }
    }
    let mut printed = 0u64;
    let mut last_record = Instant::now();
    let stdout = std::io::stdout();
    loop {
        let request = FetchRequest::default()
            .with_replica_id((-1).into())
            .with_max_wait_ms(500)
            .with_min_bytes(1)
            .with_max_bytes(8 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic.clone())
                .with_partitions(
                    positions
                        .iter()
                        .map(|(&p, &offset)| {
                            FetchPartition::default()
                                .with_partition(p)
                                .with_fetch_offset(offset)
                                .with_partition_max_bytes(1 << 20)
                                .with_current_leader_epoch(-1)
                        })
                        .collect(),
                )]);
        let response = client.send(request, 11).await?;
        let mut out = stdout.lock();
        for t in response.responses {
            for p in t.partitions {
                anyhow::ensure!(
                    p.error_code == 0,
                    "partition {}: error {}",
                    p.partition_index,
                    p.error_code
                );
                let Some(mut records) = p.records else {
                    continue;
                };
                let position = positions.entry(p.partition_index).or_default();
                for (offset, key, value) in decode(&mut records)? {
                    if offset < *position {
                        continue;
                    }
                    *position = offset + 1;
                    if args.print_key {
                        out.write_all(key.as_deref().unwrap_or(b"null"))?;
                        out.write_all(b"\t")?;
                    }
                    out.write_all(value.as_deref().unwrap_or(b"null"))?;
                    out.write_all(b"\n")?;
                    printed += 1;
                    last_record = Instant::now();
                    if args.max_messages.is_some_and(|max| printed >= max) {
                        out.flush()?;
                        return Ok(());
                    }
                }
            }
        }
        out.flush()?;
        if args
            .timeout_ms
            .is_some_and(|t| last_record.elapsed() >= Duration::from_millis(t))
        {
            return Ok(());
        }
    }
}

/// A record as printed: (offset, key, value).
type Consumed = (i64, Option<Bytes>, Option<Bytes>);

/// (offset, key, value) of every record in a fetched record set. Each batch is checked
/// (CRC, and a record count its size can hold) before the decoder, which reserves memory
/// by the batch's record count, sees it.
fn decode(records: &mut Bytes) -> anyhow::Result<Vec<Consumed>> {
    let (batches, valid) = crate::log::batch::scan_valid_prefix(records);
    let mut out = Vec::new();
    let mut rest = records.slice(..valid);
    for batch in batches {
        // A record takes at least 7 bytes; a batch claiming more records than that is corrupt.
        anyhow::ensure!(
            (batch.record_count as i64) * 7 <= i64::from(batch.size_bytes),
            "batch at offset {} claims {} records in {} bytes",
            batch.base_offset,
            batch.record_count,
            batch.size_bytes
        );
        let mut one = rest.split_to(batch.size_bytes as usize);
        let set = RecordBatchDecoder::decode(&mut one)?;
        for record in set.records {
            out.push((record.offset, record.key, record.value));
        }
    }
    Ok(out)
}
