// Cosmos DB (NoSQL): last-known device state, device catalog, reconciliation log, alarms and jobs.

param name string
param location string
param tags { *: string }

param databaseName string

@description('Container names; every container is partitioned by /id (src/infra/adapters.ts).')
param containerNames string[]

// Cost: serverless bills request units and storage only, with no provisioned minimum: right for a fleet whose
// load is bursty or small. A steady high write rate is cheaper on provisioned or autoscale throughput (a new
// account: capacity mode cannot be changed in place). Key auth is disabled: the app uses Microsoft Entra ID.
resource account 'Microsoft.DocumentDB/databaseAccounts@2025-10-15' = {
  name: name
  location: location
  tags: tags
  kind: 'GlobalDocumentDB'
  properties: {
    databaseAccountOfferType: 'Standard'
    locations: [
      {
        locationName: location
        failoverPriority: 0
        isZoneRedundant: false
      }
    ]
    consistencyPolicy: {
      defaultConsistencyLevel: 'Session'
    }
    capabilities: [
      {
        name: 'EnableServerless'
      }
    ]
    disableLocalAuth: true
    // Databases and containers come from this template only (CreateResourcesIfMissing=false).
    disableKeyBasedMetadataWriteAccess: true
    minimalTlsVersion: 'Tls12'
    publicNetworkAccess: 'Enabled'
  }
}

// The one database of the app.
resource database 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases@2025-10-15' = {
  parent: account
  name: databaseName
  properties: {
    resource: {
      id: databaseName
    }
  }
}

// One container per store, partition key /id as the code expects (a different key would break point reads).
resource containers 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2025-10-15' = [
  for containerName in containerNames: {
    parent: database
    name: containerName
    properties: {
      resource: {
        id: containerName
        partitionKey: {
          paths: [
            '/id'
          ]
          kind: 'Hash'
        }
      }
    }
  }
]

output name string = account.name
output id string = account.id
output endpoint string = account.properties.documentEndpoint
output databaseName string = database.name
