// Optional data access for the person running `azd provision` (AZURE_PRINCIPAL_ID): read the archive, query
// Cosmos DB and manage devices with Microsoft Entra ID, since no account keys or iothubowner policy exist.
// main.bicep skips it when principalId is empty or a service principal (a deployment pipeline needs no data).

param principalId string
param archiveStorageName string
param cosmosAccountName string
param iotHubName string
param eventHubNamespaceName string
param replayHubName string

// Storage Blob Data Contributor: browse and fix archive, dead-letter and provisioning blobs.
var storageBlobDataContributorRoleId = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
// IoT Hub Data Contributor: devices, twins, jobs and methods from the portal or `az iot hub ... --auth-type login`.
var iotHubDataContributorRoleId = '4fc6c259-987e-4a07-842e-c321cc9d413f'
// Azure Event Hubs Data Sender: `npm run replay` from the operator's machine (docs/adr/0013). Nobody else may send
// to the replay hub, which is why replayTelemetry trusts the device identity in its envelope.
var eventHubsDataSenderRoleId = '2b629674-e913-4c01-ae53-ef4638d8f975'
// Cosmos DB Built-in Data Contributor (Cosmos DB data-plane role): Data Explorer and SDK access to items.
var cosmosDataContributorRoleId = '00000000-0000-0000-0000-000000000002'

resource archiveStorage 'Microsoft.Storage/storageAccounts@2025-06-01' existing = {
  name: archiveStorageName
}

resource cosmos 'Microsoft.DocumentDB/databaseAccounts@2025-10-15' existing = {
  name: cosmosAccountName
}

resource iotHub 'Microsoft.Devices/IotHubs@2023-06-30' existing = {
  name: iotHubName
}

resource eventHubNamespace 'Microsoft.EventHub/namespaces@2026-01-01' existing = {
  name: eventHubNamespaceName
}

resource replayHub 'Microsoft.EventHub/namespaces/eventhubs@2026-01-01' existing = {
  parent: eventHubNamespace
  name: replayHubName
}

// principalType is left out: ARM looks the principal up (a user, or a group if someone passes one).
resource archiveBlobContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(archiveStorage.id, principalId, storageBlobDataContributorRoleId)
  scope: archiveStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributorRoleId)
    principalId: principalId
  }
}

// Data explorer access for the deployer (whole account).
resource cosmosDataContributor 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2025-10-15' = {
  parent: cosmos
  name: guid(cosmos.id, principalId, cosmosDataContributorRoleId)
  properties: {
    roleDefinitionId: '${cosmos.id}/sqlRoleDefinitions/${cosmosDataContributorRoleId}'
    principalId: principalId
    scope: cosmos.id
  }
}

// Device management for the deployer.
resource iotHubDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(iotHub.id, principalId, iotHubDataContributorRoleId)
  scope: iotHub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', iotHubDataContributorRoleId)
    principalId: principalId
  }
}

// Replay: send to the replay hub only (not the namespace, not the anomalies hub).
resource replayHubSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(replayHub.id, principalId, eventHubsDataSenderRoleId)
  scope: replayHub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', eventHubsDataSenderRoleId)
    principalId: principalId
  }
}
