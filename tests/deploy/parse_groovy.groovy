// Parse (compile, never run) each Groovy file given as an argument; print OK or the
// compiler's error per file and exit 1 when any fails. Used by tests/deploy.
def failed = false
args.each { path ->
    try {
        new GroovyShell().parse(new File(path))
        println "OK ${path}"
    } catch (Exception e) {
        println "FAIL ${path}: ${e.message}"
        failed = true
    }
}
System.exit(failed ? 1 : 0)
