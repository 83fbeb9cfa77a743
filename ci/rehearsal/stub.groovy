// A small stand-in for Jenkins' Declarative Pipeline runtime: evaluates a real Jenkinsfile under
// Groovy, records every step, and runs sh/bat commands for real in per-agent workspaces.
// Written for this project (ci/rehearse.py drives it); the idea of stubbing the DSL comes from
// JenkinsPipelineUnit, no code of it is used.
//
// Usage: groovy ci/rehearsal/stub.groovy SCENARIO.json RESULT.json
// SCENARIO.json: jenkinsfile, root, job, env (what Jenkins and the global properties set), params,
// causes, agents [{name, labels, unix}], credentials {id: {secret | username, password}},
// scm {origin, head, target}, command_env (PATH, HOME... for commands), abort_on (substring of
// a command that aborts the build when it starts), minute_ms (length of a stubbed minute).
// RESULT.json: result, stages [{name, result}], steps [{step, ...}], archived, log.
//
// Semantics kept from Jenkins (see docs/jenkins.md for what is not): stages after a failure are
// skipped; `when` skips a stage; stage and pipeline post conditions; a matrix runs every axis
// value with the axis in the environment; `agent` allocates a node by label expression and
// checks out the job's SCM; stash/unstash copy files between workspaces; withCredentials binds
// variables only inside its block; parallel with failFast interrupts the other branches;
// timeout interrupts its body; an abort interrupts the build and runs post { aborted/always }.

import groovy.json.JsonOutput
import groovy.json.JsonSlurper
import java.nio.file.Files
import java.nio.file.Path
import java.nio.file.Paths
import java.nio.file.StandardCopyOption
import java.util.concurrent.ConcurrentHashMap
import org.codehaus.groovy.control.CompilerConfiguration

class Interrupted extends RuntimeException {
    String result
    Interrupted(String message, String result) { super(message); this.result = result }
}

class StepError extends RuntimeException {
    StepError(String message) { super(message) }
}

/** Where a step runs: agent, workspace, current directory, environment. One per thread. */
class Context implements Cloneable {
    Map agent
    File workspace
    File cwd
    Map<String, String> env = new LinkedHashMap<String, String>()
    List<String> stage = []
    boolean unstable = false  // the running stage called `unstable`
    Context copy() {
        Context c = new Context(agent: agent, workspace: workspace, cwd: cwd, unstable: unstable)
        c.env = new LinkedHashMap<String, String>(env)
        c.stage = new ArrayList<String>(stage)
        return c
    }
}

class Runtime {
    Map config
    File root
    List<Map> steps = Collections.synchronizedList([])
    List<Map> stages = Collections.synchronizedList([])
    List<String> log = Collections.synchronizedList([])
    List<String> archived = Collections.synchronizedList([])
    Map<String, File> stashes = new ConcurrentHashMap<String, File>()
    String result = 'SUCCESS'
    volatile boolean aborted = false
    Set<Thread> buildThreads = Collections.synchronizedSet(new HashSet<Thread>())
    ThreadLocal<Context> current = new ThreadLocal<Context>()
    int stashCount = 0

    Context ctx() { return current.get() }

    synchronized void worsen(String r) {
        def order = ['SUCCESS', 'UNSTABLE', 'FAILURE', 'NOT_BUILT', 'ABORTED']
        if (order.indexOf(r) > order.indexOf(result)) { result = r }
    }

    long started = System.currentTimeMillis()

    void record(Map step) {
        step.ms = System.currentTimeMillis() - started
        Context c = ctx()
        step.agent = c?.agent?.name
        step.stage = c ? c.stage.join(' / ') : null
        if (c?.workspace != null && c?.cwd != null) {
            step.cwd = c.workspace.toPath().relativize(c.cwd.toPath()).toString()
        }
        steps << step
    }

    void echo(String text) { log << text }

    // -- agents ------------------------------------------------------------------------------
    boolean matches(Map agent, String expression) {
        return expression.split(/\|\|/).any { String alt ->
            alt.split('&&').every { String term ->
                term = term.trim().replaceAll(/^\(|\)$/, '').trim()
                boolean negate = term.startsWith('!')
                String name = negate ? term.substring(1).trim() : term
                boolean has = (agent.labels as List).contains(name) || agent.name == name
                negate ? !has : has
            }
        }
    }

    /** The first online agent for a label; waits (interruptibly) while there is none. */
    Map allocate(String label) {
        Map agent = (config.agents as List<Map>).find { matches(it, label) }
        long waited = 0
        while (agent == null) {
            if (aborted) { throw new Interrupted('aborted while waiting for an agent', 'ABORTED') }
            try {
                Thread.sleep(20)
            } catch (InterruptedException ignored) {
                throw new Interrupted("interrupted while waiting for an agent labelled '${label}'", 'ABORTED')
            }
            waited += 20
            if (waited > 120000) {
                throw new IllegalStateException("rehearsal: no agent for '${label}' and nothing gave up " +
                                                'waiting; a real Jenkins would wait forever')
            }
        }
        return agent
    }

    File workspaceOf(Map agent) {
        File ws = new File(root, "agents/${agent.name}/workspace/${config.job.replace('/', '_')}")
        ws.mkdirs()
        return ws
    }

    // -- processes ---------------------------------------------------------------------------
    Map run(String kind, String script, boolean returnStatus, boolean returnStdout) {
        Context c = ctx()
        if (config.abort_on && script.contains(config.abort_on as String)) {
            aborted = true
            record([step: kind, script: script, aborted: true])
            buildThreads.each { if (it != Thread.currentThread()) { it.interrupt() } }
            throw new Interrupted('Aborted by the rehearsal (abort_on)', 'ABORTED')
        }
        String command = kind == 'bat' ? script.replaceAll(/^@/, '') : script
        def env = new LinkedHashMap<String, String>(config.command_env as Map)
        env.putAll(c.env)
        ProcessBuilder pb = new ProcessBuilder(['sh', '-c', command])
        pb.directory(c.cwd)
        pb.environment().clear()
        pb.environment().putAll(env)
        pb.redirectErrorStream(!returnStdout)
        File errFile = File.createTempFile('stub', '.err')
        if (returnStdout) { pb.redirectError(errFile) }
        Process proc = pb.start()
        def out = new ByteArrayOutputStream()
        Thread pump = Thread.start { out << proc.inputStream }
        int code
        try {
            code = proc.waitFor()
            pump.join()
        } catch (InterruptedException ignored) {
            proc.destroy()
            throw new Interrupted("${kind} interrupted", 'ABORTED')
        }
        String text = out.toString('UTF-8')
        if (!returnStdout) { text.readLines().each { log << it } }
        else { errFile.readLines().each { log << it } }
        errFile.delete()
        record([step: kind, script: script, exit: code, env: new TreeSet(c.env.keySet()) as List,
                bound: c.env.findAll { k, v -> (config.secret_values as List ?: []).contains(v) }.keySet() as List])
        if (code != 0 && !returnStatus) {
            throw new StepError("script returned exit code ${code}")
        }
        return [code: code, out: text]
    }
}

/** The base class of the evaluated Jenkinsfile: every step and global Jenkins provides. */
abstract class PipelineScript extends Script {
    static Runtime rt

    Object getEnv() { return new EnvProxy(rt) }
    Map getParams() { return rt.config.params as Map ?: [:] }
    Object getCurrentBuild() { return new CurrentBuild(rt) }
    Map getScm() {
        return [$class: 'GitSCM', userRemoteConfigs: [[url: rt.config.scm.origin]], job: true]
    }

    def propertyMissing(String name) {
        Context c = rt.ctx()
        if (c != null && c.env.containsKey(name)) { return c.env[name] }
        throw new MissingPropertyException(name, this.class)
    }

    // -- steps -------------------------------------------------------------------------------
    void echo(Object text) { rt.record([step: 'echo', text: String.valueOf(text)]); rt.echo(String.valueOf(text)) }

    void error(String message) {
        rt.record([step: 'error', message: message])
        throw new StepError(message)
    }

    void unstable(String message) {
        rt.record([step: 'unstable', message: message])
        rt.worsen('UNSTABLE')
        StageRunner.markUnstable(rt)
    }

    boolean isUnix() { return rt.ctx().agent.unix as boolean }

    Object sh(Map args) { return shell('sh', args) }
    Object sh(String script) { return shell('sh', [script: script]) }
    Object bat(Map args) {
        if (isUnix()) { throw new StepError('bat on a Unix agent') }
        return shell('bat', args)
    }
    Object bat(String script) { return bat([script: script]) }

    private Object shell(String kind, Map args) {
        requireNode(kind)
        Map r = rt.run(kind, args.script as String, args.returnStatus as boolean, args.returnStdout as boolean)
        if (args.returnStatus) { return r.code }
        if (args.returnStdout) { return r.out }
        return null
    }

    private void requireNode(String step) {
        if (rt.ctx()?.agent == null) {
            throw new StepError("${step}: Required context class hudson.FilePath is missing (no agent)")
        }
    }

    boolean fileExists(String path) {
        requireNode('fileExists')
        return new File(rt.ctx().cwd, path).exists()
    }

    Object dir(String path, Closure body) {
        requireNode('dir')
        Context c = rt.ctx()
        File before = c.cwd
        c.cwd = new File(before, path).canonicalFile
        c.cwd.mkdirs()
        try {
            return body.call()
        } finally {
            c.cwd = before
        }
    }

    void deleteDir() {
        requireNode('deleteDir')
        rt.record([step: 'deleteDir'])
        rt.ctx().cwd.deleteDir()
    }

    void stash(Map args) {
        requireNode('stash')
        File from = rt.ctx().cwd
        List<String> files = Glob.find(from, args.includes as String)
        if (files.isEmpty() && !args.allowEmpty) {
            throw new StepError("stash '${args.name}': no files included by ${args.includes}")
        }
        File store = new File(rt.root, "stashes/${rt.stashCount++}-${args.name}")
        files.each { String f -> Glob.copy(new File(from, f), new File(store, f)) }
        rt.stashes[args.name as String] = store
        rt.record([step: 'stash', name: args.name, files: files])
    }

    void unstash(String name) {
        requireNode('unstash')
        File store = rt.stashes[name]
        if (store == null) { throw new StepError("No such saved stash '${name}'") }
        List<String> files = Glob.find(store, '**')
        files.each { String f -> Glob.copy(new File(store, f), new File(rt.ctx().cwd, f)) }
        rt.record([step: 'unstash', name: name, files: files])
    }

    void archiveArtifacts(Map args) {
        requireNode('archiveArtifacts')
        List<String> files = []
        (args.artifacts as String).split(',').each { files += Glob.find(rt.ctx().cwd, it.trim()) }
        if (files.isEmpty() && !args.allowEmptyArchive) {
            throw new StepError("No artifacts found that match the file pattern \"${args.artifacts}\"")
        }
        File store = new File(rt.root, 'archive')
        files.each { String f -> Glob.copy(new File(rt.ctx().cwd, f), new File(store, f)) }
        rt.archived.addAll(files)
        rt.record([step: 'archiveArtifacts', files: files])
    }

    void junit(Map args) { requireNode('junit'); rt.record([step: 'junit', testResults: args.testResults]) }
    Map pyLint(Map args) { return [tool: 'pyLint'] + args }
    void recordIssues(Map args) { requireNode('recordIssues'); rt.record([step: 'recordIssues']) }
    void recordCoverage(Map args) { requireNode('recordCoverage'); rt.record([step: 'recordCoverage']) }
    void publishHTML(Map args) {
        requireNode('publishHTML')
        Map target = args.target as Map
        rt.record([step: 'publishHTML', reportName: target.reportName,
                   present: new File(rt.ctx().cwd, "${target.reportDir}/${target.reportFiles}").exists()])
    }

    Map string(Map args) { return [kind: 'string'] + args }
    Map usernamePassword(Map args) { return [kind: 'usernamePassword'] + args }

    Object withCredentials(List bindings, Closure body) {
        Context c = rt.ctx()
        Map<String, String> saved = new LinkedHashMap<String, String>(c.env)
        bindings.each { Map b ->
            Map cred = (rt.config.credentials as Map)[b.credentialsId]
            if (cred == null) { throw new StepError("Could not find credentials entry with ID '${b.credentialsId}'") }
            if (b.kind == 'string') {
                c.env[b.variable as String] = cred.secret as String
            } else {
                c.env[b.usernameVariable as String] = cred.username as String
                c.env[b.passwordVariable as String] = cred.password as String
            }
        }
        rt.record([step: 'withCredentials', ids: bindings.collect { it.credentialsId }])
        try {
            return body.call()
        } finally {
            c.env.clear()
            c.env.putAll(saved)
        }
    }

    Object node(String label, Closure body) {
        Map agent = rt.allocate(label)
        Context c = rt.ctx()
        Context saved = c.copy()
        c.agent = agent
        c.workspace = rt.workspaceOf(agent)
        c.cwd = c.workspace
        rt.record([step: 'node', label: label])
        try {
            return body.call()
        } finally {
            c.agent = saved.agent
            c.workspace = saved.workspace
            c.cwd = saved.cwd
        }
    }

    Object checkout(Map scmSpec) {
        requireNode('checkout')
        Map spec = scmSpec.containsKey('scm') ? scmSpec.scm as Map : scmSpec
        if (spec.job) {
            return Git.checkoutJob(rt)
        }
        String branch = ((spec.branches as List)[0] as Map).name as String
        return Git.checkoutBranch(rt, branch.replaceAll(/^\*\//, ''))
    }

    Object timeout(Map args, Closure body) {
        long ms = (args.time as long) * ((args.unit == 'HOURS') ? 60 : (args.unit == 'SECONDS' ? 1.0 / 60 : 1)) *
                  (rt.config.minute_ms as long)
        Thread me = Thread.currentThread()
        boolean[] fired = [false]
        Thread timer = Thread.start {
            try {
                Thread.sleep(Math.max(ms, 1L))
                fired[0] = true
                me.interrupt()
            } catch (InterruptedException ignored) { }
        }
        try {
            return body.call()
        } catch (Interrupted e) {
            if (fired[0]) { throw new Interrupted('Timeout has been exceeded', 'ABORTED') }
            throw e
        } finally {
            timer.interrupt()
            Thread.interrupted()
        }
    }

    void sleep(Map args) {
        long ms = (args.time as long) * ((args.unit == 'MINUTES') ? (rt.config.minute_ms as long)
                                                                  : (rt.config.minute_ms as long) / 60)
        rt.record([step: 'sleep'])
        try {
            Thread.sleep(Math.max(ms, 1L))
        } catch (InterruptedException ignored) {
            throw new Interrupted('sleep interrupted', 'ABORTED')
        }
        if (rt.aborted) { throw new Interrupted('aborted', 'ABORTED') }
    }

    Object parallel(Map branches) {
        boolean failFast = branches.failFast as boolean
        Map<String, Closure> work = branches.findAll { k, v -> k != 'failFast' } as Map<String, Closure>
        List<Throwable> failures = Collections.synchronizedList([])
        List<Thread> threads = []
        Context parent = rt.ctx()
        work.each { String name, Closure body ->
            Context mine = parent.copy()
            mine.stage = parent.stage + [name]
            threads << new Thread({
                rt.current.set(mine)
                rt.buildThreads << Thread.currentThread()
                try {
                    body.call()
                } catch (Throwable t) {
                    failures << t
                    if (failFast) { threads.each { if (it != Thread.currentThread()) { it.interrupt() } } }
                } finally {
                    rt.buildThreads.remove(Thread.currentThread())
                }
            } as Runnable, name)
        }
        rt.record([step: 'parallel', branches: work.keySet() as List])
        threads*.start()
        threads.each { Thread t ->
            while (true) {
                try {
                    t.join()
                    break
                } catch (InterruptedException ignored) {
                    threads*.interrupt()  // this branch was interrupted: so are its children
                }
            }
        }
        if (!failures.isEmpty()) {
            Throwable first = failures.find { !(it instanceof Interrupted) } ?: failures[0]
            if (rt.aborted) { throw new Interrupted('aborted', 'ABORTED') }
            throw first
        }
        return null
    }

    Object script(Closure body) { return body.call() }

    // -- the Declarative front end -----------------------------------------------------------
    void pipeline(Closure body) {
        PipelineSpec model = Model.collect(body, new PipelineSpec()) as PipelineSpec
        new StageRunner(rt, this).runPipeline(model)
    }
}

class EnvProxy {
    Runtime rt
    EnvProxy(Runtime rt) { this.rt = rt }
    def propertyMissing(String name) { return rt.ctx()?.env?.get(name) }
    def propertyMissing(String name, Object value) { rt.ctx().env[name] = String.valueOf(value) }
}

class CurrentBuild {
    Runtime rt
    CurrentBuild(Runtime rt) { this.rt = rt }
    List getBuildCauses(String cls) {
        return (rt.config.causes as List ?: []).findAll { it == cls }.collect { [_class: it] }
    }
    String getCurrentResult() { return rt.result }
    String getResult() { return rt.result == 'SUCCESS' ? null : rt.result }
    void setResult(String r) { rt.worsen(r) }
}

/** Model objects: closures collected by delegation, evaluated when the stage runs. */
class Model {
    static Object collect(Closure body, Object spec) {
        Closure c = body.rehydrate(spec, body.owner, body.thisObject)
        c.resolveStrategy = Closure.DELEGATE_FIRST
        c.call()
        return spec
    }
}

class PipelineSpec {
    Closure agentBody; Object agentValue
    Closure parametersBody, triggersBody, optionsBody, environmentBody
    List<StageSpec> stageList = []
    Map<String, Closure> postConditions = [:]
    def getNone() { return 'none' }
    void agent(Object v) { agentValue = v }
    void agent(Closure c) { agentBody = c }
    void parameters(Closure c) { parametersBody = c }
    void triggers(Closure c) { triggersBody = c }
    void options(Closure c) { optionsBody = c }
    void environment(Closure c) { environmentBody = c }
    void stages(Closure c) { Model.collect(c, new StagesSpec(list: stageList)) }
    void post(Closure c) { Model.collect(c, new PostSpec(conditions: postConditions)) }
}

class StagesSpec {
    List<StageSpec> list
    void stage(String name, Closure c) { list << (Model.collect(c, new StageSpec(name: name)) as StageSpec) }
}

class StageSpec {
    String name
    Closure agentBody; Object agentValue
    Closure whenBody, environmentBody, stepsBody, optionsBody
    MatrixSpec matrix
    List<StageSpec> stageList = []
    Map<String, Closure> postConditions = [:]
    def getNone() { return 'none' }
    void agent(Object v) { agentValue = v }
    void agent(Closure c) { agentBody = c }
    void when(Closure c) { whenBody = c }
    void environment(Closure c) { environmentBody = c }
    void options(Closure c) { optionsBody = c }
    void steps(Closure c) { stepsBody = c }
    void stages(Closure c) { Model.collect(c, new StagesSpec(list: stageList)) }
    void post(Closure c) { Model.collect(c, new PostSpec(conditions: postConditions)) }
    void matrix(Closure c) { matrix = Model.collect(c, new MatrixSpec()) as MatrixSpec }
}

class MatrixSpec extends StageSpec {
    List<Map> axisList = []
    void axes(Closure c) { Model.collect(c, new AxesSpec(list: axisList)) }
}

class AxesSpec {
    List<Map> list
    void axis(Closure c) { list << (Model.collect(c, new AxisSpec()) as AxisSpec).asMap() }
}

class AxisSpec {
    String axisName; List<String> axisValues = []
    void name(String n) { axisName = n }
    void values(String... v) { axisValues = v as List }
    Map asMap() { return [name: axisName, values: axisValues] }
}

class PostSpec {
    Map<String, Closure> conditions
    void always(Closure c) { conditions.always = c }
    void success(Closure c) { conditions.success = c }
    void failure(Closure c) { conditions.failure = c }
    void unstable(Closure c) { conditions.unstable = c }
    void aborted(Closure c) { conditions.aborted = c }
    void cleanup(Closure c) { conditions.cleanup = c }
}

class AgentSpec {
    String labelValue
    void label(String l) { labelValue = l }
}

class EnvSpec {
    Map<String, String> values = [:]
    def propertyMissing(String name, Object value) { values[name] = String.valueOf(value) }
}

/** `when`: expression, not, allOf, anyOf, branch, changeRequest. */
class WhenSpec {
    Runtime rt
    List<Closure> tests = []
    void expression(Closure c) { tests << c }
    void not(Closure c) { WhenSpec inner = Model.collect(c, new WhenSpec(rt: rt)) as WhenSpec; tests << { !inner.holds() } }
    void allOf(Closure c) { WhenSpec inner = Model.collect(c, new WhenSpec(rt: rt)) as WhenSpec; tests << { inner.holds() } }
    void anyOf(Closure c) { WhenSpec inner = Model.collect(c, new WhenSpec(rt: rt)) as WhenSpec; tests << { inner.tests.any { it.call() } } }
    void branch(String b) { tests << { rt.ctx().env.BRANCH_NAME == b } }
    void changeRequest() { tests << { rt.ctx().env.CHANGE_ID != null } }
    boolean holds() { return tests.every { it.call() as boolean } }
}

/** Records declared options, parameters and triggers (they configure the job, not the run). */
class Recorder {
    List<Map> calls = []
    def methodMissing(String name, Object args) {
        calls << [name: name, args: String.valueOf(args as List)]
        return [name: name]
    }
}

class StageRunner {
    Runtime rt
    PipelineScript script
    StageRunner(Runtime rt, PipelineScript script) { this.rt = rt; this.script = script }

    static void markUnstable(Runtime rt) {
        Context c = rt.ctx()
        if (c != null) {
            Map entry = rt.stages.reverse().find { it.path == c.stage.join(' / ') }
            if (entry != null && entry.result == 'SUCCESS') { entry.result = 'UNSTABLE' }
            c.unstable = true
        }
    }

    /** Evaluate a collected closure with the script's steps and the context's variables. */
    Object evaluate(Closure body, Object delegate = null) {
        Closure c = body.rehydrate(delegate ?: script, script, script)
        c.resolveStrategy = Closure.DELEGATE_FIRST
        return c.call()
    }

    void runPipeline(PipelineSpec spec) {
        Context c = new Context()
        c.env.putAll(rt.config.env as Map)
        rt.current.set(c)
        rt.buildThreads << Thread.currentThread()
        ['parameters', 'triggers', 'options'].each { String what ->
            Closure body = spec."${what}Body"
            if (body != null) {
                Recorder rec = new Recorder()
                evaluate(body, rec)
                rt.record([step: what, calls: rec.calls])
            }
        }
        if (spec.environmentBody != null) { applyEnv(spec.environmentBody, c) }
        boolean failed = false
        for (StageSpec stage : spec.stageList) {
            failed = runStage(stage, [], failed) || failed
        }
        runPost(spec.postConditions, rt.result)
        rt.buildThreads.remove(Thread.currentThread())
    }

    void applyEnv(Closure body, Context c) {
        EnvSpec env = new EnvSpec()
        evaluate(body, env)
        c.env.putAll(env.values)
    }

    /** Run one stage (or skip it); true when it failed or the build was aborted. */
    boolean runStage(StageSpec stage, List<String> parents, boolean skip) {
        Context c = rt.ctx()
        List<String> path = parents + [stage.name]
        Map entry = [name: stage.name, path: path.join(' / '), result: 'SUCCESS']
        if (skip || rt.aborted) {
            entry.result = 'SKIPPED'
            rt.stages << entry
            return skip
        }
        Context saved = c.copy()
        c.stage = path
        c.unstable = false
        rt.stages << entry
        try {
            if (stage.environmentBody != null && stage.agentBody == null && stage.agentValue == null) {
                applyEnv(stage.environmentBody, c)
            }
            if (stage.whenBody != null) {
                WhenSpec when = new WhenSpec(rt: rt)
                evaluate(stage.whenBody, when)
                if (!when.holds()) {
                    entry.result = 'SKIPPED'
                    return false
                }
            }
            if (stage.matrix != null) {
                return runMatrix(stage, path, entry)
            }
            String label = null
            if (stage.agentBody != null) {
                AgentSpec agent = new AgentSpec()
                evaluate(stage.agentBody, agent)
                label = agent.labelValue
            }
            Closure work = {
                if (stage.environmentBody != null && label != null) { applyEnv(stage.environmentBody, c) }
                boolean failed = false
                try {
                    if (stage.stepsBody != null) {
                        evaluate(stage.stepsBody)
                    }
                    for (StageSpec inner : stage.stageList) {
                        failed = runStage(inner, path, failed) || failed
                    }
                } catch (Interrupted e) {
                    entry.result = e.result
                    rt.worsen(e.result)
                    rt.aborted = rt.aborted || e.result == 'ABORTED'
                    rt.echo(e.message)
                    failed = true
                } catch (StepError e) {
                    entry.result = 'FAILURE'
                    rt.worsen('FAILURE')
                    rt.echo("ERROR: ${e.message}")
                    failed = true
                }
                if (failed && entry.result == 'SUCCESS') { entry.result = 'FAILURE' }
                if (!failed && c.unstable && entry.result == 'SUCCESS') { entry.result = 'UNSTABLE' }
                runPost(stage.postConditions, entry.result)
                return failed
            }
            if (label != null) {
                return script.node(label) {
                    Git.checkoutJob(rt)
                    work.call()
                } as boolean
            }
            return work.call() as boolean
        } finally {
            c.env = saved.env
            c.stage = saved.stage
            c.unstable = saved.unstable
        }
    }

    boolean runMatrix(StageSpec stage, List<String> path, Map entry) {
        MatrixSpec m = stage.matrix
        List<Map<String, String>> cells = [[:]]
        m.axisList.each { Map axis ->
            cells = cells.collectMany { Map cell -> (axis.values as List).collect { v -> cell + [(axis.name): v] } }
        }
        boolean failed = false
        cells.each { Map<String, String> cell ->
            Context c = rt.ctx()
            Map<String, String> before = new LinkedHashMap<String, String>(c.env)
            c.env.putAll(cell)
            StageSpec cellStage = new StageSpec(name: cell.collect { k, v -> "${k} = '${v}'" }.join(', '),
                                                agentBody: m.agentBody, agentValue: m.agentValue,
                                                environmentBody: m.environmentBody, stageList: m.stageList,
                                                postConditions: m.postConditions, whenBody: m.whenBody)
            try {
                failed = runStage(cellStage, path, false) || failed
            } finally {
                c.env.clear()
                c.env.putAll(before)
            }
        }
        if (failed) { entry.result = rt.aborted ? 'ABORTED' : 'FAILURE' }
        return failed
    }

    void runPost(Map<String, Closure> conditions, String result) {
        List<String> order = ['always', 'success', 'unstable', 'failure', 'aborted', 'cleanup']
        order.each { String name ->
            Closure body = conditions[name]
            if (body == null) { return }
            boolean run = name in ['always', 'cleanup'] ||
                          (name == 'success' && result == 'SUCCESS') ||
                          (name == 'unstable' && result == 'UNSTABLE') ||
                          (name == 'failure' && result == 'FAILURE') ||
                          (name == 'aborted' && result == 'ABORTED')
            if (!run) { return }
            boolean wasAborted = rt.aborted
            rt.aborted = false  // post runs after an abort, as in Jenkins
            Thread.interrupted()
            try {
                evaluate(body)
            } catch (StepError e) {
                rt.worsen('FAILURE')
                rt.echo("ERROR in post ${name}: ${e.message}")
            } finally {
                rt.aborted = rt.aborted || wasAborted
            }
        }
    }
}

/** The checkouts: the job's SCM as GitHub Branch Source makes it, or a branch of the origin. */
class Git {
    static String git(Runtime rt, List<String> args, boolean check = true) {
        Context c = rt.ctx()
        ProcessBuilder pb = new ProcessBuilder((['git'] + args).collect { it.toString() })
        pb.directory(c.cwd)
        pb.environment().putAll([GIT_AUTHOR_NAME: 'Jenkins', GIT_AUTHOR_EMAIL: 'jenkins@localhost',
                                 GIT_COMMITTER_NAME: 'Jenkins', GIT_COMMITTER_EMAIL: 'jenkins@localhost'])
        pb.redirectErrorStream(true)
        Process p = pb.start()
        String out = p.inputStream.text
        int code = p.waitFor()
        if (check && code != 0) { throw new StepError("git ${args.join(' ')} exited ${code}: ${out}") }
        return out.trim()
    }

    static void fetchOrigin(Runtime rt, List<String> refspecs) {
        Context c = rt.ctx()
        if (!new File(c.cwd, '.git').exists()) {
            git(rt, ['init', '-q'])
            git(rt, ['remote', 'add', 'origin', rt.config.scm.origin as String])
        }
        git(rt, ['fetch', '-q', '--no-tags', 'origin'] + refspecs)
    }

    /** GitHub Branch Source, "merging the pull request with the current target branch revision":
     *  check out the PR head, merge the target into it (a fast-forward allowed, so a PR that
     *  already contains the target's tip has no merge commit). A branch: its head. */
    static Map checkoutJob(Runtime rt) {
        Map scm = rt.config.scm as Map
        Context c = rt.ctx()
        String head = scm.head as String
        String target = scm.target as String
        if (target) {
            String pr = rt.config.env.BRANCH_NAME
            fetchOrigin(rt, ["+${head}:refs/remotes/origin/${pr}", "+refs/heads/${target}:refs/remotes/origin/${target}"])
            git(rt, ['checkout', '-q', '-f', "refs/remotes/origin/${pr}".toString()])
            git(rt, ['merge', '-q', "refs/remotes/origin/${target}".toString()])
        } else {
            String branch = head.replaceAll('^refs/heads/', '')
            fetchOrigin(rt, ["+${head}:refs/remotes/origin/${branch}"])
            git(rt, ['checkout', '-q', '-f', "refs/remotes/origin/${branch}".toString()])
        }
        String commit = git(rt, ['rev-parse', 'HEAD'])
        c.env.GIT_COMMIT = commit
        rt.record([step: 'checkout', what: 'scm', commit: commit])
        return [GIT_COMMIT: commit]
    }

    static Map checkoutBranch(Runtime rt, String branch) {
        fetchOrigin(rt, ["+refs/heads/${branch}:refs/remotes/origin/${branch}"])
        git(rt, ['checkout', '-q', '-f', "refs/remotes/origin/${branch}".toString()])
        String commit = git(rt, ['rev-parse', 'HEAD'])
        rt.record([step: 'checkout', what: branch, commit: commit])
        return [GIT_COMMIT: commit]
    }
}

/** Ant-style patterns as stash/archiveArtifacts read them: `**`, `*`, comma lists. */
class Glob {
    static List<String> find(File base, String patterns) {
        List<String> found = []
        if (!base.exists()) { return found }
        patterns.split(',').each { String pattern ->
            String regex = toRegex(pattern.trim())
            base.eachFileRecurse(groovy.io.FileType.FILES) { File f ->
                String rel = base.toPath().relativize(f.toPath()).toString().replace('\\', '/')
                if (rel ==~ regex && !found.contains(rel)) { found << rel }
            }
        }
        return found.sort()
    }

    static String toRegex(String pattern) {
        if (pattern.endsWith('/')) { pattern += '**' }
        StringBuilder sb = new StringBuilder()
        int i = 0
        while (i < pattern.length()) {
            char ch = pattern.charAt(i)
            if (pattern.startsWith('**/', i)) { sb.append('(?:.*/)?'); i += 3; continue }
            if (pattern.startsWith('**', i)) { sb.append('.*'); i += 2; continue }
            if (ch == '*') { sb.append('[^/]*') }
            else if (ch == '?') { sb.append('[^/]') }
            else if ('.+()[]{}^$|\\'.indexOf((int) ch) >= 0) { sb.append('\\').append(ch) }
            else { sb.append(ch) }
            i++
        }
        return sb.toString()
    }

    static void copy(File from, File to) {
        to.parentFile.mkdirs()
        Files.copy(from.toPath(), to.toPath(), StandardCopyOption.REPLACE_EXISTING)
    }
}

// -- main ----------------------------------------------------------------------------------------
if (args.length != 2) {
    System.err.println('usage: groovy ci/rehearsal/stub.groovy SCENARIO.json RESULT.json')
    System.exit(1)
}
Map config = new JsonSlurper().parse(new File(args[0])) as Map
Runtime rt = new Runtime(config: config, root: new File(config.root as String))
PipelineScript.rt = rt
CompilerConfiguration cc = new CompilerConfiguration()
cc.scriptBaseClass = PipelineScript.name
GroovyShell shell = new GroovyShell(this.class.classLoader, new Binding(), cc)
String crash = null
try {
    Script jenkinsfile = shell.parse(new File(config.jenkinsfile as String))
    jenkinsfile.run()
} catch (Throwable t) {
    StringWriter sw = new StringWriter()
    t.printStackTrace(new PrintWriter(sw))
    crash = sw.toString()
    rt.worsen('FAILURE')
}
new File(args[1]).text = JsonOutput.prettyPrint(JsonOutput.toJson([
    result: rt.result, stages: rt.stages, steps: rt.steps, archived: rt.archived, log: rt.log,
    crash: crash,
]))
System.exit(crash == null ? 0 : 3)
