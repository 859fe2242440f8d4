using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Azure.Messaging.EventHubs;
using Azure.Messaging.EventHubs.Consumer;
using Azure.Messaging.EventHubs.Primitives;
using Azure.Messaging.EventHubs.Processor;
using Azure.Storage.Blobs;

namespace DotnetEventHubsProbe;

/// <summary>
/// The host's path: an event processor (load balancing over blob ownership, checkpoints in blobs, batches per
/// partition, checkpoint after each batch) runs until Expect events tagged Tag were processed, then stops.
/// </summary>
internal sealed class ProbeProcessor : PluggableCheckpointStoreEventProcessor<EventProcessorPartition>
{
    /// <summary>The Functions host's checkpoint container (AzureWebJobsStorage).</summary>
    public const string HostCheckpointContainer = "azure-webjobs-eventhub";

    private readonly string _tag;
    private readonly ConcurrentQueue<JsonObject> _processed = new();
    private readonly ConcurrentQueue<string> _errors = new();
    private int _tagged;
    private int _untagged;

    private ProbeProcessor(CheckpointStore store, string tag, string consumerGroup, string connectionString, string hub, EventProcessorOptions options)
        : base(store, 16, consumerGroup, connectionString, hub, options)
    {
        _tag = tag;
    }

    /// <summary>Tagged events processed so far.</summary>
    public int Tagged => Volatile.Read(ref _tagged);

    /// <summary>
    /// Runs the processor; STORAGE_CONNECTION_STRING names the blob account (Azurite), PROBE_CHECKPOINT_CONTAINER
    /// the container (default: the host's).
    /// </summary>
    public static async Task<JsonObject> RunAsync(string connectionString, ProbeOptions options, CancellationToken token)
    {
        var storage = Environment.GetEnvironmentVariable("STORAGE_CONNECTION_STRING")
            ?? throw new InvalidOperationException("processor: STORAGE_CONNECTION_STRING is not set");
        var containerName = Environment.GetEnvironmentVariable("PROBE_CHECKPOINT_CONTAINER") ?? HostCheckpointContainer;
        var container = new BlobContainerClient(storage, containerName);
        await container.CreateIfNotExistsAsync(cancellationToken: token);
        var store = new BlobCheckpointStore(container);
        var processorOptions = new EventProcessorOptions
        {
            LoadBalancingStrategy = LoadBalancingStrategy.Greedy,
            LoadBalancingUpdateInterval = TimeSpan.FromMilliseconds(500),
            DefaultStartingPosition = EventPosition.Earliest,
            MaximumWaitTime = TimeSpan.FromMilliseconds(options.MaxWaitMs),
        };
        var processor = new ProbeProcessor(store, options.Tag, options.ConsumerGroup, connectionString, options.Hub, processorOptions);
        await processor.StartProcessingAsync(token);
        try
        {
            while (processor.Tagged < options.Expect && processor._errors.IsEmpty && !token.IsCancellationRequested)
            {
                await Task.Delay(100, CancellationToken.None);
            }
        }
        finally
        {
            // Stopping relinquishes ownership, so the next run claims the partitions at once.
            await processor.StopProcessingAsync(CancellationToken.None);
        }
        if (!processor._errors.IsEmpty || processor.Tagged < options.Expect)
        {
            throw new InvalidOperationException(
                $"processor: {processor.Tagged} of {options.Expect} events tagged '{options.Tag}' processed ({processor._untagged} others); errors: "
                + string.Join("; ", processor._errors));
        }
        return new JsonObject
        {
            ["events"] = new JsonArray(processor._processed.Select(e => (JsonNode)e).ToArray()),
            // Events of other tags this run processed: after a checkpoint, the events before it must not come again.
            ["untagged"] = processor._untagged,
            ["checkpointsWritten"] = store.CheckpointsWritten,
        };
    }

    /// <inheritdoc />
    protected override async Task OnProcessingEventBatchAsync(IEnumerable<EventData> events, EventProcessorPartition partition, CancellationToken cancellationToken)
    {
        EventData? last = null;
        var tagged = 0;
        foreach (var data in events)
        {
            last = data;
            if (data.Properties.TryGetValue("tag", out var tag) && Equals(tag, _tag))
            {
                _processed.Enqueue(EventJson.Event(partition.PartitionId, data));
                tagged++;
            }
            else
            {
                Interlocked.Increment(ref _untagged);
            }
        }
        // Checkpoint after the invocation, as the host does (at-least-once); counted only once checkpointed, so
        // the run never stops between an event and its checkpoint.
        if (last is not null)
        {
            await UpdateCheckpointAsync(partition.PartitionId, CheckpointPosition.FromEvent(last), cancellationToken);
        }
        Interlocked.Add(ref _tagged, tagged);
    }

    /// <inheritdoc />
    protected override Task OnProcessingErrorAsync(Exception exception, EventProcessorPartition partition, string operationDescription, CancellationToken cancellationToken)
    {
        _errors.Enqueue($"{operationDescription} (partition {partition?.PartitionId ?? "-"}): {exception.GetType().Name}: {exception.Message}");
        return Task.CompletedTask;
    }
}
