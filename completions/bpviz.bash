# bash completion for bpviz; installed as share/bash-completion/completions/bpviz.
# Keep the option list in step with `bpviz --help` (test_install checks it).
_bpviz() {
    local cur prev
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD-1]}
    case $prev in
        -o) COMPREPLY=($(compgen -f -X '!*.@(dot|gv|svg|png|pdf|json|html)' -- "$cur") $(compgen -d -- "$cur")); return ;;
        -T) COMPREPLY=($(compgen -W 'dot svg png pdf json html' -- "$cur")); return ;;
        --step) COMPREPLY=($(compgen -W 'last first-nonfinite' -- "$cur")); return ;;
        --snapshot) COMPREPLY=($(compgen -W 'every none' -- "$cur")); return ;;
        --steps) COMPREPLY=($(compgen -W 'all last' -- "$cur")); return ;;
        --rankdir) COMPREPLY=($(compgen -W 'LR TB' -- "$cur")); return ;;
        --theme) COMPREPLY=($(compgen -W 'tutorial print colorblind' -- "$cur")); return ;;
        --tensors) COMPREPLY=($(compgen -W 'auto values heatmap' -- "$cur")); return ;;
        --op-symbols) COMPREPLY=($(compgen -W 'default tutorial' -- "$cur")); return ;;
        --labels) COMPREPLY=($(compgen -W 'values full shapes' -- "$cur")); return ;;
        --font)
            local IFS=$'\n'
            COMPREPLY=($(compgen -W "$(fc-list : family 2>/dev/null | cut -d, -f1 | sort -u)" -- "$cur"))
            return ;;
        --precision|--size|--dpi|--focus|--depth|--max-nodes|--threads) return ;;
        --memory) COMPREPLY=($(compgen -W '1G 2G 4G 8G 16G 32G' -- "$cur")); return ;;
        --fit) COMPREPLY=($(compgen -W '16:9 4:3 16:10 1:1' -- "$cur")); return ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W '-o -T --step --steps --gradcheck --focus --depth --max-nodes
            --rankdir --theme --labels --precision --plain-names --font --size --dpi --watch
            --exact-numbers --no-update --tensors --legend --op-symbols
            --fit --memory --snapshot --threads -h --help --version' -- "$cur"))
    elif [[ $COMP_CWORD -eq 1 ]]; then
        # a model, or a JSON trace to draw
        COMPREPLY=($(compgen -W 'run bench check' -- "$cur") $(compgen -f -X '!*.bp' -- "$cur")
            $(compgen -f -X '!*.json' -- "$cur") $(compgen -d -- "$cur"))
    elif [[ ${COMP_WORDS[1]} == @(run|bench|check) ]]; then
        COMPREPLY=($(compgen -f -X '!*.bp' -- "$cur") $(compgen -d -- "$cur"))
    else
        COMPREPLY=($(compgen -f -X '!*.bp' -- "$cur") $(compgen -f -X '!*.json' -- "$cur")
            $(compgen -d -- "$cur"))
    fi
}
complete -o filenames -F _bpviz bpviz
