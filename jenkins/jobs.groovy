// Job DSL: the two pipeline jobs, both read from the repository (LOOPLINE_GIT_URL).
// Loaded by jenkins/casc.yaml (jobs: - file: .../jobs.groovy).
def repo = System.getenv('LOOPLINE_GIT_URL') ?: 'https://git.example.com/mlops/loopline.git'

pipelineJob('Loopline') {
    description('Main pipeline: checks, training smoke, images, evaluation gate, push, deploy, smoke test')
    properties {
        pipelineTriggers {
            triggers {
                // a git push to main calls <jenkins>/generic-webhook-trigger/invoke with the token
                // (the git server's push webhook, docs/deploy.md); polling is the fallback
                genericTrigger {
                    genericVariables {
                        genericVariable { key('ref'); value('$.ref') }
                    }
                    tokenCredentialId('git-webhook-token')
                    regexpFilterText('$ref')
                    regexpFilterExpression('^refs/heads/main$')
                    causeString('git push to $ref')
                    printContributedVariables(false)
                    printPostContent(false)
                }
                pollSCM { scmpoll_spec('H/15 * * * *') }
            }
        }
    }
    definition {
        cpsScm {
            scm {
                git {
                    remote { url(repo); credentials('git-credentials') }
                    branch('*/main')
                }
            }
            scriptPath('Jenkinsfile')
            lightweight(true)
        }
    }
}

pipelineJob('FineTuneModels') {
    description('Fine-tune one model, gate it, then trigger the main pipeline (started by the watchdog)')
    // the watchdog's Jenkins user may start this job and nothing else (casc.yaml: projectMatrix)
    authorization {
        permissions('loopline-watchdog', ['hudson.model.Item.Read', 'hudson.model.Item.Build'])
    }
    // declared here, not only in the Jenkinsfile: the watchdog's first buildWithParameters
    // must find them before any build has run. MODEL is free text: every registry model
    // the watchdog can name (new style-<name> models too) is legal; the service validates it.
    parameters {
        stringParam('MODEL', 'qa-extractive', 'registry model to fine-tune (qa-extractive, vqa-blip, style-<name>)')
        stringParam('DATASET', 'feedback', 'dataset path relative to the data root, or "feedback" (the corrections)')
        stringParam('EPOCHS', '3', 'training epochs')
        stringParam('BATCH_SIZE', '8', 'batch size')
        stringParam('LEARNING_RATE', '0.0002', 'learning rate')
        stringParam('REASON', 'manual', 'why (the watchdog fills in its policy verdict)')
    }
    definition {
        cpsScm {
            scm {
                git {
                    remote { url(repo); credentials('git-credentials') }
                    branch('*/main')
                }
            }
            scriptPath('jenkins/FineTuneModels.Jenkinsfile')
            lightweight(true)
        }
    }
}
