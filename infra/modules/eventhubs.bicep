// Event Hubs: the `anomalies` hub Stream Analytics writes to and notifyAnomalies reads (consumer group `notify`),
// and the `replay` hub `npm run replay` sends archived records to and replayTelemetry reads (consumer group `replay`).

param name string
param location string
param tags { *: string }

@description('Hub Stream Analytics writes anomaly records to.')
param hubName string

@description('Consumer group of the notifyAnomalies trigger.')
param consumerGroupName string

@minValue(1)
@maxValue(32)
param partitionCount int = 2

@description('Hub `npm run replay` sends archived records to (docs/adr/0013).')
param replayHubName string

@description('Consumer group of the replayTelemetry trigger.')
param replayConsumerGroupName string

@minValue(1)
@maxValue(32)
param replayPartitionCount int = 4

// Cost: Standard is about 11 USD per throughput unit and month plus ingress events. Standard (not Basic) because
// Basic offers only the $Default consumer group and the app reads through its own (`notify`); one TU (1 MB/s in)
// is far above the anomaly rate. Local (SAS) auth is disabled: ASA sends and the app receives with managed
// identities.
resource namespace 'Microsoft.EventHub/namespaces@2026-01-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: 'Standard'
    tier: 'Standard'
    capacity: 1
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    isAutoInflateEnabled: false
    publicNetworkAccess: 'Enabled'
  }
}

// The anomalies hub: one record per anomaly, partitioned by deviceId (asa/Outputs/Anomalies.json).
resource hub 'Microsoft.EventHub/namespaces/eventhubs@2026-01-01' = {
  parent: namespace
  name: hubName
  properties: {
    partitionCount: partitionCount
    messageRetentionInDays: 1
  }
}

// notifyAnomalies' own consumer group, so that another reader (a dashboard, a debugger) never steals its leases.
resource consumerGroup 'Microsoft.EventHub/namespaces/eventhubs/consumergroups@2026-01-01' = {
  parent: hub
  name: consumerGroupName
  properties: {}
}

// The replay hub: one event per archived IoT Hub message, partitioned by device id. Only the deploying operator may
// send (principal-roles.bicep) and only the app receives (function-roles.bicep): the envelope's device identity is
// trusted because of that. One day of retention: a replay is consumed as it is sent.
resource replayHub 'Microsoft.EventHub/namespaces/eventhubs@2026-01-01' = {
  parent: namespace
  name: replayHubName
  properties: {
    partitionCount: replayPartitionCount
    messageRetentionInDays: 1
  }
}

resource replayConsumerGroup 'Microsoft.EventHub/namespaces/eventhubs/consumergroups@2026-01-01' = {
  parent: replayHub
  name: replayConsumerGroupName
  properties: {}
}

output namespaceName string = namespace.name
output hubName string = hub.name
output hubId string = hub.id
output replayHubName string = replayHub.name
@description('Host name of the namespace, e.g. mynamespace.servicebus.windows.net (from https://…:443/).')
output fullyQualifiedNamespace string = split(split(namespace.properties.serviceBusEndpoint, '//')[1], ':')[0]
