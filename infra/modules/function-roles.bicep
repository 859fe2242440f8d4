// Role assignments of the function app's system-assigned managed identity: each role on the narrowest scope that
// covers what the code does (src/infra/adapters.ts, the Functions host and its extensions).

@description('Object (principal) id of the function app\'s system-assigned identity.')
param principalId string

param hostStorageName string
param archiveStorageName string
param cosmosAccountName string
param cosmosDatabaseName string
param eventHubNamespaceName string
param anomaliesHubName string
param iotHubName string
param appInsightsName string
param keyVaultName string
param iotHubEventsSecretName string
param provisioningKeysSecretName string

// Built-in role definition ids (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles).
// Storage Blob Data Owner: host blobs (Event Hubs checkpoints, leases, durable task hub, deployment package).
var storageBlobDataOwnerRoleId = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
// Storage Queue Data Contributor: durable task hub control and work-item queues.
var storageQueueDataContributorRoleId = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
// Storage Table Data Contributor: durable task hub history and instances tables.
var storageTableDataContributorRoleId = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
// Storage Blob Data Contributor: raw archive, dead letters, provisioning work and results blobs.
var storageBlobDataContributorRoleId = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
// Azure Event Hubs Data Receiver: the notifyAnomalies trigger on the anomalies hub.
var eventHubsDataReceiverRoleId = 'a638d3c7-ab3a-418d-83e6-5f17a39d4fde'
// IoT Hub Registry Contributor: device identities (create, get, bulk update, delete), data action devices/*.
var iotHubRegistryContributorRoleId = '4ea46cd5-c1b2-4a8e-910b-273211f9ce47'
// IoT Hub Twin Contributor: device twins (read, patch desired properties and tags), data action twins/*.
var iotHubTwinContributorRoleId = '494bdba2-168f-4f31-a0a1-191d2f7c028c'
// IoT Hub Data Contributor: IoT Hub jobs (scheduleTwinUpdate, scheduleDeviceMethod, getJob, cancelJob need the
// jobs/read and jobs/write data actions, and method jobs invoke directMethods/invoke/action). No narrower built-in
// role holds the jobs data actions; this one (Microsoft.Devices/IotHubs/*) also covers the two roles above. They
// stay assigned so that replacing this role by a custom role (jobs/*, directMethods/invoke/action) keeps the
// registry and twins working.
var iotHubDataContributorRoleId = '4fc6c259-987e-4a07-842e-c321cc9d413f'
// Monitoring Metrics Publisher: the host sends telemetry to Application Insights with Microsoft Entra ID.
var monitoringMetricsPublisherRoleId = '3913510d-42f4-4e42-8a64-420c390055eb'
// Key Vault Secrets User: resolve the IotHubEventsConnection Key Vault reference (scope: that one secret).
var keyVaultSecretsUserRoleId = '4633458b-17de-408a-b874-0445c86b69e6'
// Cosmos DB Built-in Data Contributor (a Cosmos DB data-plane role, not an Azure RBAC role): read, write, query
// items. It cannot create databases or containers, which this template does (CreateResourcesIfMissing=false).
var cosmosDataContributorRoleId = '00000000-0000-0000-0000-000000000002'

var hostStorageRoleIds = [
  storageBlobDataOwnerRoleId
  storageQueueDataContributorRoleId
  storageTableDataContributorRoleId
]

var iotHubRoleIds = [
  iotHubRegistryContributorRoleId
  iotHubTwinContributorRoleId
  iotHubDataContributorRoleId
]

resource hostStorage 'Microsoft.Storage/storageAccounts@2025-06-01' existing = {
  name: hostStorageName
}

resource archiveStorage 'Microsoft.Storage/storageAccounts@2025-06-01' existing = {
  name: archiveStorageName
}

resource cosmos 'Microsoft.DocumentDB/databaseAccounts@2025-10-15' existing = {
  name: cosmosAccountName
}

resource eventHubNamespace 'Microsoft.EventHub/namespaces@2026-01-01' existing = {
  name: eventHubNamespaceName
}

resource anomaliesHub 'Microsoft.EventHub/namespaces/eventhubs@2026-01-01' existing = {
  parent: eventHubNamespace
  name: anomaliesHubName
}

resource iotHub 'Microsoft.Devices/IotHubs@2023-06-30' existing = {
  name: iotHubName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource keyVault 'Microsoft.KeyVault/vaults@2026-02-01' existing = {
  name: keyVaultName
}

resource iotHubEventsSecret 'Microsoft.KeyVault/vaults/secrets@2026-02-01' existing = {
  parent: keyVault
  name: iotHubEventsSecretName
}

resource provisioningKeysSecret 'Microsoft.KeyVault/vaults/secrets@2026-02-01' existing = {
  parent: keyVault
  name: provisioningKeysSecretName
}

// Host storage: blob, queue and table data roles (the Durable Functions Azure Storage provider needs all three).
resource hostStorageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in hostStorageRoleIds: {
    name: guid(hostStorage.id, principalId, roleId)
    scope: hostStorage
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
      principalId: principalId
      principalType: 'ServicePrincipal'
    }
  }
]

// Archive storage: blob data only (no queues or tables there, no account management).
resource archiveStorageBlobContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(archiveStorage.id, principalId, storageBlobDataContributorRoleId)
  scope: archiveStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributorRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Cosmos DB: data-plane role, scoped to the app's database only.
resource cosmosDataContributor 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2025-10-15' = {
  parent: cosmos
  name: guid(cosmos.id, principalId, cosmosDataContributorRoleId)
  properties: {
    roleDefinitionId: '${cosmos.id}/sqlRoleDefinitions/${cosmosDataContributorRoleId}'
    principalId: principalId
    scope: '${cosmos.id}/dbs/${cosmosDatabaseName}'
  }
}

// Anomalies hub: receive only, scoped to the hub (not the namespace).
resource anomaliesHubReceiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(anomaliesHub.id, principalId, eventHubsDataReceiverRoleId)
  scope: anomaliesHub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', eventHubsDataReceiverRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// IoT Hub service APIs (identity registry, twins, jobs) with Microsoft Entra ID. Not here: a data role for the
// built-in Event Hub-compatible endpoint, which does not accept Microsoft Entra ID (see main.bicep); its
// connection string is read from Key Vault instead (below).
resource iotHubRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in iotHubRoleIds: {
    name: guid(iotHub.id, principalId, roleId)
    scope: iotHub
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
      principalId: principalId
      principalType: 'ServicePrincipal'
    }
  }
]

// Application Insights: publish telemetry with the managed identity (local auth is disabled on the component).
resource appInsightsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, principalId, monitoringMetricsPublisherRoleId)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisherRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Key Vault: read the one secret the app needs (the IoT Hub events connection string), not the whole vault.
resource iotHubEventsSecretReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(iotHubEventsSecret.id, principalId, keyVaultSecretsUserRoleId)
  scope: iotHubEventsSecret
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUserRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Key Vault: read the key encrypting generated device keys at rest (Provisioning__KeysEncryptionKey), that secret only.
resource provisioningKeysSecretReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(provisioningKeysSecret.id, principalId, keyVaultSecretsUserRoleId)
  scope: provisioningKeysSecret
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUserRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
