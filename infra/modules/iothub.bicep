// IoT Hub: device identities, twins, jobs, direct methods and the built-in Event Hub-compatible endpoint that
// both ingestTelemetry (consumer group `ingest`) and Stream Analytics (consumer group `asa`) read.

@description('IoT Hub name (globally unique).')
param name string

param location string
param tags { *: string }

// Cost: S1 is about 25 USD per unit and month for 400,000 messages per day per unit. S1 (not Basic) because the
// app needs twins, jobs and direct methods, which the Basic tier lacks; F1 (free, 8,000 messages per day, one
// per subscription) works for a trial.
@allowed(['F1', 'S1', 'S2', 'S3'])
param skuName string = 'S1'

@minValue(1)
param capacity int = 1

// Fixed at creation: the number of partitions is the ingest parallelism (one Event Hub trigger lease each).
@minValue(2)
@maxValue(32)
param partitionCount int = 4

// How long the built-in endpoint keeps messages (1 to 7 days): how far back a replay can go (ADR 0002, 0003).
@minValue(1)
@maxValue(7)
param retentionDays int = 1

@description('Consumer groups on the built-in events endpoint, one per reader (never shared).')
param consumerGroupNames string[]

@description('Shared access policy (ServiceConnect only) whose key the function app uses for the built-in endpoint.')
param ingestPolicyName string

@description('Shared access policy (ServiceConnect only) whose key the Stream Analytics input uses.')
param asaPolicyName string

resource iotHub 'Microsoft.Devices/IotHubs@2023-06-30' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: skuName
    capacity: skuName == 'F1' ? 1 : capacity
  }
  properties: {
    eventHubEndpoints: {
      events: {
        retentionTimeInDays: retentionDays
        // The free tier allows two partitions only.
        partitionCount: skuName == 'F1' ? 2 : partitionCount
      }
    }
    // Exactly these policies, each ServiceConnect only (read the built-in endpoint): no iothubowner, no registry
    // rights. The app manages identities, twins and jobs with its managed identity (Azure RBAC), so no policy
    // needs registry or device rights; operators use Microsoft Entra ID (e.g. `az iot hub ... --auth-type login`).
    // Listing policies here replaces the hub's defaults, including iothubowner.
    authorizationPolicies: [
      {
        keyName: ingestPolicyName
        rights: 'ServiceConnect'
      }
      {
        keyName: asaPolicyName
        rights: 'ServiceConnect'
      }
    ]
    routing: {
      // No custom routes: every device-to-cloud message goes to the built-in endpoint. The fallback route is
      // IoT Hub's default; it is stated here so that a redeployment (a PUT of the whole hub) keeps it enabled
      // and a custom route added later cannot silently starve the built-in endpoint.
      fallbackRoute: {
        name: '$fallback'
        source: 'DeviceMessages'
        condition: 'true'
        endpointNames: [
          'events'
        ]
        isEnabled: true
      }
    }
  }
}

// One consumer group per reader of the built-in endpoint; created one at a time (operations on one hub conflict).
@batchSize(1)
resource consumerGroups 'Microsoft.Devices/IotHubs/eventHubEndpoints/ConsumerGroups@2023-06-30' = [
  for consumerGroupName in consumerGroupNames: {
    name: '${iotHub.name}/events/${consumerGroupName}'
    properties: {
      name: consumerGroupName
    }
  }
]

output name string = iotHub.name
output id string = iotHub.id
output hostName string = iotHub.properties.hostName
@description('Event Hub-compatible endpoint of the built-in endpoint, e.g. sb://ihsuprodxx.servicebus.windows.net/')
output eventHubEndpoint string = iotHub.properties.eventHubEndpoints.events.endpoint
@description('Event Hub-compatible name of the built-in endpoint.')
output eventHubPath string = iotHub.properties.eventHubEndpoints.events.path
