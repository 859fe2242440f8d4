// Application Insights standard availability test of the app's health endpoint (GET /api/health: 200 when Cosmos
// DB, Blob storage, the identity store and Slack answer, 503 otherwise). Failures show in Application Insights'
// Availability blade and can drive an alert rule.

param name string
param location string
param tags { *: string }
param appInsightsName string

@description('The health endpoint: https://{function app host}/api/health (anonymous).')
param healthUrl string

// Cost: standard tests are billed per run; 3 locations every 5 minutes is ~26,000 runs a month.
@minValue(300)
@maxValue(900)
param frequencySeconds int = 300

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource healthTest 'Microsoft.Insights/webtests@2022-06-15' = {
  name: name
  location: location
  // The hidden link is how Application Insights finds its tests.
  tags: union(tags, {
    'hidden-link:${appInsights.id}': 'Resource'
  })
  kind: 'standard'
  properties: {
    SyntheticMonitorId: name
    Name: 'GET /api/health'
    Description: 'Dependencies of the IoT backend answer (Cosmos DB, Blob, identity store, Slack)'
    Enabled: true
    Frequency: frequencySeconds
    Timeout: 30
    Kind: 'standard'
    RetryEnabled: true
    Locations: [
      { Id: 'emea-nl-ams-azr' }
      { Id: 'us-va-ash-azr' }
      { Id: 'apac-sg-sin-azr' }
    ]
    Request: {
      RequestUrl: healthUrl
      HttpVerb: 'GET'
      ParseDependentRequests: false
    }
    ValidationRules: {
      ExpectedHttpStatusCode: 200
      SSLCheck: true
      SSLCertRemainingLifetimeCheck: 7
    }
  }
}

output id string = healthTest.id
