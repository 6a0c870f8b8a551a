# The learning loop's red team (docs/threat-model.md): liars, colluders, a flood, honest users
# and a reviewer against a private stack over a copy of ./data/registry. Prints per scenario what
# reached production; exits non-zero when a "done when" number is missed.
.PHONY: redteam
redteam: install ## red-team the feedback loop (about 10 min; REDTEAM_ARGS="--quick" or scenario names)
	$(LOOPLINE) redteam $(REDTEAM_ARGS)
