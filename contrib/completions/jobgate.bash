# bash completion for jobgate(8). Installed as
# /usr/share/bash-completion/completions/jobgate; or source it.
# tests/cli_docs.rs checks that it offers every command and option that
# `jobgate help` and each command's --help list.

_jobgate() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
    local cmd='' sub='' word i words=''
    # The command and the token or trust subcommand, skipping options and the
    # values of the options that take one.
    for ((i = 1; i < COMP_CWORD; i++)); do
        word=${COMP_WORDS[i]}
        case $word in
            --json | --version | --help | --raw | --) ;;
            --*) i=$((i + 1)) ;;
            *)
                if [[ -z $cmd ]]; then
                    cmd=$word
                elif [[ ($cmd == token || $cmd == trust) && -z $sub ]]; then
                    sub=$word
                fi
                ;;
        esac
    done

    case $prev in
        --tokens | --hooks | --redact | --trust | --systemctl | --journalctl | --sudo)
            compopt -o filenames 2>/dev/null
            mapfile -t COMPREPLY < <(compgen -f -- "$cur")
            return
            ;;
        --state-dir)
            compopt -o filenames 2>/dev/null
            mapfile -t COMPREPLY < <(compgen -d -- "$cur")
            return
            ;;
        --journal) words='group' ;;
        --journal-reader) words='native journalctl' ;;
        --privilege) words='sudo polkit' ;;
        --scope) words='ro rw metrics' ;;
        --run) words='last' ;;
        --prefix | --max-follows | --max-follows-per-token | --max-follow-secs | --listen | --trust-proxy | --limit | --lines | --job)
            return
            ;;
    esac

    if [[ -z $words ]]; then
        case $cmd in
            '')
                if [[ $cur == -* ]]; then
                    words='--prefix --tokens --state-dir --systemctl --journalctl --sudo --journal --journal-reader --privilege --hooks --redact --trust --max-follows --max-follows-per-token --max-follow-secs --json --version --help'
                else
                    words='serve inetd cgi jobs start stop state runs logs follow check token trust help'
                fi
                ;;
            serve) words='--listen --trust-proxy --help' ;;
            inetd | cgi) words='--trust-proxy --help' ;;
            runs) words='--limit --help' ;;
            logs) words='--lines --run --raw --help' ;;
            follow) words='--run --help' ;;
            jobs | start | stop | state | check) words='--help' ;;
            token)
                case $sub in
                    '') words='add list revoke --help' ;;
                    add) words='--scope --job --help' ;;
                    list | revoke) words='--help' ;;
                esac
                ;;
            trust)
                case $sub in
                    '') words='explain check-jwks --help' ;;
                    explain) words='--job --help' ;;
                    check-jwks)
                        compopt -o filenames 2>/dev/null
                        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
                        return
                        ;;
                esac
                ;;
        esac
    fi
    mapfile -t COMPREPLY < <(compgen -W "$words" -- "$cur")
}
complete -F _jobgate jobgate
