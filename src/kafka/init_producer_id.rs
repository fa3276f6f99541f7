//! InitProducerId: a new producer id at epoch 0 for an idempotent producer (as Kafka does
//! for producers without a transactional id, even when they pass their old id). A
//! transactional id is refused: bramble does not support transactions.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::{errors, Context};

/// Handle an InitProducerId request.
pub fn handle(ctx: &Context, request: InitProducerIdRequest) -> InitProducerIdResponse {
    let refused = |code| {
        InitProducerIdResponse::default()
            .with_error_code(code)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if let Some(id) = &request.transactional_id {
        tracing::warn!(transactional_id = %id.0.as_str(), "refusing a transactional producer: transactions are not supported");
        return refused(errors::INVALID_REQUEST);
    }
    let allocator = ctx.producer_ids.clone();
    match tokio::task::block_in_place(|| allocator.allocate()) {
        Ok(id) => {
            tracing::debug!(producer_id = id, "allocated a producer id");
            InitProducerIdResponse::default()
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(0)
        }
        Err(error) => {
            tracing::error!(%error, "cannot persist a producer id block");
            refused(errors::COORDINATOR_NOT_AVAILABLE)
        }
    }
}
