// Parse a Jenkinsfile the way Jenkins' Groovy front end does, without running it.
// Usage: groovy ci/parse_jenkinsfile.groovy Jenkinsfile [more files...]
// A declarative pipeline is a Groovy script of nested method calls with closures, so compiling it
// up to the CONVERSION phase (parse + AST) rejects every syntax error Jenkins would reject before
// it even looks at the pipeline model. Exit 0 when all files parse, 1 otherwise.
import org.codehaus.groovy.control.CompilationFailedException
import org.codehaus.groovy.control.CompilationUnit
import org.codehaus.groovy.control.CompilerConfiguration
import org.codehaus.groovy.control.Phases

if (args.length == 0) {
    System.err.println('usage: groovy ci/parse_jenkinsfile.groovy JENKINSFILE...')
    System.exit(1)
}
int failures = 0
for (String name : args) {
    File file = new File(name)
    if (!file.isFile()) {
        System.err.println("${name}: no such file")
        failures++
        continue
    }
    CompilationUnit unit = new CompilationUnit(new CompilerConfiguration())
    unit.addSource(file)
    try {
        unit.compile(Phases.CONVERSION)
        println("${name}: parses as Groovy ${GroovySystem.version}")
    } catch (CompilationFailedException e) {
        System.err.println("${name}: does not parse:\n${e.message}")
        failures++
    }
}
System.exit(failures == 0 ? 0 : 1)
