//! `bramble topic create|list|describe|delete`, like kafka-topics.sh.

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest, MetadataRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::client::Client;

/// Where the broker is.
#[derive(Debug, clap::Args)]
pub struct Server {
    /// A broker's host:port.
    #[arg(long = "bootstrap-server", default_value = "127.0.0.1:9092")]
    pub bootstrap_server: String,
}

/// Topic subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Create a topic.
    Create {
        /// Topic name.
        topic: String,
        /// Partition count (default: the broker's num_partitions).
        #[arg(long)]
        partitions: Option<i32>,
        /// Replication factor (default: the broker's default_replication_factor).
        #[arg(long = "replication-factor")]
        replication_factor: Option<i16>,
        /// A topic setting, key=value (repeatable), e.g. retention.ms=60000.
        #[arg(long = "config")]
        configs: Vec<String>,
        #[command(flatten)]
        server: Server,
    },
    /// List topic names.
    List {
        #[command(flatten)]
        server: Server,
    },
    /// Show partitions, leaders, ISR and settings of one or every topic.
    Describe {
        /// Topic name; all topics when absent.
        topic: Option<String>,
        #[command(flatten)]
        server: Server,
    },
    /// Delete a topic and its data.
    Delete {
        /// Topic name.
        topic: String,
        #[command(flatten)]
        server: Server,
    },
}

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

/// Run a topic subcommand.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Create {
            topic,
            partitions,
            replication_factor,
            configs,
            server,
        } => {
            let mut client = Client::connect(&server.bootstrap_server).await?;
            let mut entries = Vec::new();
            for entry in configs {
                let (key, value) = entry
                    .split_once('=')
                    .ok_or_else(|| anyhow::anyhow!("--config takes key=value, got '{entry}'"))?;
                entries.push(
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from_string(key.to_string()))
                        .with_value(Some(StrBytes::from_string(value.to_string()))),
                );
            }
            let request = CreateTopicsRequest::default()
                .with_timeout_ms(30_000)
                .with_topics(vec![CreatableTopic::default()
                    .with_name(name(&topic))
                    .with_num_partitions(partitions.unwrap_or(-1))
                    .with_replication_factor(replication_factor.unwrap_or(-1))
                    .with_configs(entries)]);
            let response = client.send(request, 5).await?;
            for result in response.topics {
                if result.error_code != 0 {
                    anyhow::bail!(
                        "cannot create {}: error {} {}",
                        topic,
                        result.error_code,
                        result
                            .error_message
                            .as_ref()
                            .map(|m| m.as_str())
                            .unwrap_or("")
                    );
                }
                println!("Created topic {topic}.");
            }
            Ok(())
        }
        Command::List { server } => {
            let mut client = Client::connect(&server.bootstrap_server).await?;
            let response = client
                .send(MetadataRequest::default().with_topics(None), 12)
                .await?;
            let mut names: Vec<String> = response
                .topics
                .iter()
                .filter_map(|t| t.name.as_ref().map(|n| n.0.as_str().to_string()))
                .collect();
            names.sort();
            for name in names {
                println!("{name}");
            }
            Ok(())
        }
        Command::Describe { topic, server } => describe(&server.bootstrap_server, topic).await,
        Command::Delete { topic, server } => {
            let mut client = Client::connect(&server.bootstrap_server).await?;
            let request = DeleteTopicsRequest::default()
                .with_timeout_ms(30_000)
                .with_topic_names(vec![name(&topic)]);
            let response = client.send(request, 5).await?;
            for result in response.responses {
                anyhow::ensure!(
                    result.error_code == 0,
                    "cannot delete {topic}: error {}",
                    result.error_code
                );
            }
            println!("Deleted topic {topic}.");
            Ok(())
        }
    }
}

async fn describe(address: &str, topic: Option<String>) -> anyhow::Result<()> {
    let mut client = Client::connect(address).await?;
    let topics = topic.map(|t| vec![MetadataRequestTopic::default().with_name(Some(name(&t)))]);
    let request = MetadataRequest::default().with_topics(topics);
    let metadata = client.send(request, 12).await?;
    for topic in metadata.topics {
        let topic_name = topic
            .name
            .as_ref()
            .map(|n| n.0.as_str().to_string())
            .unwrap_or_default();
        if topic.error_code != 0 {
            anyhow::bail!("cannot describe {topic_name}: error {}", topic.error_code);
        }
        let configs = client
            .send(
                DescribeConfigsRequest::default().with_resources(vec![
                    DescribeConfigsResource::default()
                        .with_resource_type(2)
                        .with_configuration_keys(None)
                        .with_resource_name(StrBytes::from_string(topic_name.clone())),
                ]),
                2,
            )
            .await?;
        let overrides: Vec<String> = configs
            .results
            .iter()
            .flat_map(|r| r.configs.iter())
            .filter(|c| c.config_source == 1)
            .map(|c| {
                format!(
                    "{}={}",
                    c.name.as_str(),
                    c.value.as_ref().map(|v| v.as_str()).unwrap_or("")
                )
            })
            .collect();
        let replication = topic
            .partitions
            .first()
            .map(|p| p.replica_nodes.len())
            .unwrap_or(0);
        println!(
            "Topic: {topic_name}\tTopicId: {}\tPartitionCount: {}\tReplicationFactor: {replication}\tConfigs: {}",
            crate::ids::Uuid(*topic.topic_id.as_bytes()).to_base64(),
            topic.partitions.len(),
            overrides.join(",")
        );
        let mut partitions = topic.partitions;
        partitions.sort_by_key(|p| p.partition_index);
        for p in partitions {
            let list = |ids: &[kafka_protocol::messages::BrokerId]| {
                ids.iter()
                    .map(|b| b.0.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            println!(
                "\tTopic: {topic_name}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}",
                p.partition_index,
                p.leader_id.0,
                list(&p.replica_nodes),
                list(&p.isr_nodes)
            );
        }
    }
    Ok(())
}
