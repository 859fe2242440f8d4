using System.Globalization;
using Azure;
using Azure.Messaging.EventHubs.Primitives;
using Azure.Messaging.EventHubs.Processor;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;

namespace DotnetEventHubsProbe;

/// <summary>
/// Checkpoints and partition ownership in blobs, in the layout the Event Hubs processors share (the .NET
/// Azure.Messaging.EventHubs.Processor store, the Functions host's extension and the JS
/// @azure/eventhubs-checkpointstore-blob): `{namespace}/{hub}/{group}/checkpoint/{partition}` with metadata
/// `sequencenumber` and `offset`; `…/ownership/{partition}` with metadata `ownerid`, the blob's ETag as version.
/// Azure.Messaging.EventHubs.Processor is not served here, so this probe carries its own (a small subset).
/// </summary>
internal sealed class BlobCheckpointStore(BlobContainerClient container) : CheckpointStore
{
    /// <summary>How many checkpoints this store wrote (the probe reports it).</summary>
    public int CheckpointsWritten;

    private static string Prefix(string fullyQualifiedNamespace, string eventHubName, string consumerGroup, string kind) =>
        $"{fullyQualifiedNamespace}/{eventHubName}/{consumerGroup}/{kind}/".ToLowerInvariant();

    /// <inheritdoc />
    public override async Task<IEnumerable<EventProcessorPartitionOwnership>> ListOwnershipAsync(
        string fullyQualifiedNamespace, string eventHubName, string consumerGroup, CancellationToken cancellationToken)
    {
        var prefix = Prefix(fullyQualifiedNamespace, eventHubName, consumerGroup, "ownership");
        var owned = new List<EventProcessorPartitionOwnership>();
        await foreach (var blob in container.GetBlobsAsync(BlobTraits.Metadata, BlobStates.None, prefix, cancellationToken))
        {
            owned.Add(new EventProcessorPartitionOwnership
            {
                FullyQualifiedNamespace = fullyQualifiedNamespace,
                EventHubName = eventHubName,
                ConsumerGroup = consumerGroup,
                PartitionId = blob.Name[prefix.Length..],
                OwnerIdentifier = blob.Metadata.TryGetValue("ownerid", out var owner) ? owner : "",
                LastModifiedTime = blob.Properties.LastModified ?? DateTimeOffset.MinValue,
                Version = blob.Properties.ETag?.ToString(),
            });
        }
        return owned;
    }

    /// <inheritdoc />
    public override async Task<IEnumerable<EventProcessorPartitionOwnership>> ClaimOwnershipAsync(
        IEnumerable<EventProcessorPartitionOwnership> desiredOwnership, CancellationToken cancellationToken)
    {
        var claimed = new List<EventProcessorPartitionOwnership>();
        foreach (var ownership in desiredOwnership)
        {
            var name = Prefix(ownership.FullyQualifiedNamespace, ownership.EventHubName, ownership.ConsumerGroup, "ownership") + ownership.PartitionId;
            var blob = container.GetBlobClient(name);
            var metadata = new Dictionary<string, string> { ["ownerid"] = ownership.OwnerIdentifier };
            // A claim is a conditional write: If-None-Match * for a new blob, If-Match the version read otherwise.
            var conditions = ownership.Version is null ? new BlobRequestConditions { IfNoneMatch = ETag.All } : new BlobRequestConditions { IfMatch = new ETag(ownership.Version) };
            try
            {
                var info = await blob.UploadAsync(BinaryData.FromBytes([]), new BlobUploadOptions { Metadata = metadata, Conditions = conditions }, cancellationToken);
                ownership.LastModifiedTime = info.Value.LastModified;
                ownership.Version = info.Value.ETag.ToString();
                claimed.Add(ownership);
            }
            catch (RequestFailedException error) when (error.Status is 409 or 412)
            {
                // Another processor won this partition.
            }
        }
        return claimed;
    }

    /// <inheritdoc />
    public override async Task<EventProcessorCheckpoint?> GetCheckpointAsync(
        string fullyQualifiedNamespace, string eventHubName, string consumerGroup, string partitionId, CancellationToken cancellationToken)
    {
        var blob = container.GetBlobClient(Prefix(fullyQualifiedNamespace, eventHubName, consumerGroup, "checkpoint") + partitionId);
        try
        {
            var properties = await blob.GetPropertiesAsync(cancellationToken: cancellationToken);
            var metadata = properties.Value.Metadata;
            if (!metadata.TryGetValue("sequencenumber", out var sequence))
            {
                return null;
            }
            var sequenceNumber = long.Parse(sequence, CultureInfo.InvariantCulture);
            return new EventProcessorCheckpoint
            {
                FullyQualifiedNamespace = fullyQualifiedNamespace,
                EventHubName = eventHubName,
                ConsumerGroup = consumerGroup,
                PartitionId = partitionId,
                // Like the host: resume after the checkpointed event (exclusive).
                StartingPosition = Azure.Messaging.EventHubs.Consumer.EventPosition.FromSequenceNumber(sequenceNumber, isInclusive: false),
                LastModified = properties.Value.LastModified,
            };
        }
        catch (RequestFailedException error) when (error.Status == 404)
        {
            return null;
        }
    }

    /// <inheritdoc />
    [Obsolete("The numeric offset overload; the processor calls the CheckpointPosition one.")]
    public override Task UpdateCheckpointAsync(string fullyQualifiedNamespace, string eventHubName, string consumerGroup, string partitionId,
        long offset, long? sequenceNumber, CancellationToken cancellationToken) =>
        WriteCheckpointAsync(fullyQualifiedNamespace, eventHubName, consumerGroup, partitionId,
            offset.ToString(CultureInfo.InvariantCulture), sequenceNumber ?? throw new ArgumentNullException(nameof(sequenceNumber)), cancellationToken);

    /// <inheritdoc />
    public override Task UpdateCheckpointAsync(string fullyQualifiedNamespace, string eventHubName, string consumerGroup, string partitionId,
        string clientIdentifier, CheckpointPosition startingPosition, CancellationToken cancellationToken) =>
        WriteCheckpointAsync(fullyQualifiedNamespace, eventHubName, consumerGroup, partitionId,
            startingPosition.OffsetString, startingPosition.SequenceNumber, cancellationToken);

    private async Task WriteCheckpointAsync(string fullyQualifiedNamespace, string eventHubName, string consumerGroup, string partitionId,
        string? offset, long sequenceNumber, CancellationToken cancellationToken)
    {
        var blob = container.GetBlobClient(Prefix(fullyQualifiedNamespace, eventHubName, consumerGroup, "checkpoint") + partitionId);
        var metadata = new Dictionary<string, string> { ["sequencenumber"] = sequenceNumber.ToString(CultureInfo.InvariantCulture) };
        if (offset is not null)
        {
            metadata["offset"] = offset;
        }
        await blob.UploadAsync(BinaryData.FromBytes([]), new BlobUploadOptions { Metadata = metadata }, cancellationToken);
        Interlocked.Increment(ref CheckpointsWritten);
    }
}
