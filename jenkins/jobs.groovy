// Job DSL: the two pipeline jobs, both read from the repository (LOOPLINE_GIT_URL).
// Loaded by jenkins/casc.yaml (jobs: - file: .../jobs.groovy).
def repo = System.getenv('LOOPLINE_GIT_URL') ?: 'https://git.example.com/mlops/loopline.git'

pipelineJob('Loopline') {
    description('Main pipeline: checks, training smoke, images, evaluation gate, push, deploy, smoke test')
    properties {
        pipelineTriggers {
            triggers {
                // a git push notifies Jenkins; polling is the fallback
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
