"""The template's enabled event source mappings, each started as a poller of its queue or stream."""

from __future__ import annotations

from local.console import Console
from local.emulator.aws_json import AwsJsonClient
from local.faults.injection import CONSUMED_LOG, Dice, SqsMappingStats
from local.options import Options
from local.runtime.pool import FunctionPool
from local.sources.sqs import DuplicateDeliveries, SqsPoller, SqsSource
from local.sources.streams import Checkpoints, StreamPoller, StreamSource
from local.template.model import StackModel
from local.template.values import LocalValues


def start_pollers(
    model: StackModel,
    values: LocalValues,
    pools: dict[str, FunctionPool],
    aws: AwsJsonClient,
    console: Console,
    *,
    options: Options,
    dice: Dice,
    checkpoints: Checkpoints | None,
) -> tuple[list[SqsPoller], list[StreamPoller]]:
    sqs_pollers: list[SqsPoller] = []
    stream_pollers: list[StreamPoller] = []
    chaos = options.chaos
    for spec in model.mappings:
        pool = pools.get(spec.function_id)
        if not spec.enabled or pool is None:
            continue
        function_name = pool.function.display_name
        if spec.source_kind == "sqs":
            queue = model.queues[spec.source_id]
            wanted = spec.maximum_concurrency or options.max_concurrency
            pollers = max(1, min(wanted, pool.function.max_workers))
            subject = f"{function_name} <- queue {queue.display_name}"
            if spec.maximum_concurrency is None:
                model.approximated(
                    subject,
                    f"concurrency up to {pollers} batches at a time locally (--max-concurrency)",
                )
            elif pollers < spec.maximum_concurrency:
                model.approximated(
                    subject,
                    f"ScalingConfig.MaximumConcurrency {spec.maximum_concurrency} -> {pollers} "
                    "concurrent batches locally (--max-concurrency)",
                )
            dead_letters = queue.is_dead_letter_queue
            sqs_poller = SqsPoller(
                SqsSource(
                    spec=spec,
                    function_name=function_name,
                    queue_name=queue.display_name,
                    queue_url=values.queue_url(queue.logical_id),
                    queue_arn=values.queue_arn(queue.logical_id),
                    region=options.region,
                    pollers=pollers,
                ),
                aws.with_caller(f"esm-sqs/{function_name}"),
                pool.invoke,
                console,
                duplicates=DuplicateDeliveries(chaos.duplicate_rate, dice)
                if chaos.duplicate_rate > 0
                else None,
                stats=SqsMappingStats(
                    function_name,
                    queue.display_name,
                    dead_letters,
                    consumed_log=chaos.directory / CONSUMED_LOG if chaos.directory and dead_letters else None,
                ),
            )
            sqs_poller.start()
            sqs_pollers.append(sqs_poller)
        else:
            table = model.tables[spec.source_id]
            stream_poller = StreamPoller(
                StreamSource(
                    spec=spec,
                    function_name=function_name,
                    table_name=table.display_name,
                    stream_arn=str(values.get_att(table.logical_id, "StreamArn")),
                    region=options.region,
                    table=table.name,
                ),
                aws.with_caller(f"esm-stream/{function_name}"),
                pool.invoke,
                console,
                checkpoints=checkpoints,
            )
            stream_poller.start()
            stream_pollers.append(stream_poller)
    return sqs_pollers, stream_pollers
