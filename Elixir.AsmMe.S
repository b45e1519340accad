{module, 'Elixir.AsmMe'}.  %% version = 0

{exports, [{'__info__',1},{instrumented,4},{module_info,0},{module_info,1}]}.

{attributes, [{elixir_scope,[#{functions =>
                                   [{{instrumented,4},function_boundaries}],
                               level => function_boundaries}]}]}.

{labels, 28}.


{function, '__info__', 1, 2}.
  {label,1}.
    {line,[]}.
    {func_info,{atom,'Elixir.AsmMe'},{atom,'__info__'},1}.
  {label,2}.
    {select_val,{x,0},
                {f,9},
                {list,[{atom,attributes},
                       {f,8},
                       {atom,compile},
                       {f,8},
                       {atom,deprecated},
                       {f,7},
                       {atom,exports_md5},
                       {f,6},
                       {atom,functions},
                       {f,5},
                       {atom,macros},
                       {f,7},
                       {atom,md5},
                       {f,8},
                       {atom,module},
                       {f,4},
                       {atom,struct},
                       {f,3}]}}.
  {label,3}.
    {move,{atom,nil},{x,0}}.
    return.
  {label,4}.
    {move,{atom,'Elixir.AsmMe'},{x,0}}.
    return.
  {label,5}.
    {move,{literal,[{instrumented,4}]},{x,0}}.
    return.
  {label,6}.
    {move,{literal,<<221,20,60,177,103,213,226,214,210,105,125,151,251,77,25,
                     24>>},
          {x,0}}.
    return.
  {label,7}.
    {move,nil,{x,0}}.
    return.
  {label,8}.
    {move,{x,0},{x,1}}.
    {move,{atom,'Elixir.AsmMe'},{x,0}}.
    {call_ext_only,2,{extfunc,erlang,get_module_info,2}}.
  {label,9}.
    {call_only,1,{f,27}}. % '-inlined-__info__/1-'/1


{function, instrumented, 4, 11}.
  {label,10}.
    {line,[{location,"nofile",2}]}.
    {func_info,{atom,'Elixir.AsmMe'},{atom,instrumented},4}.
  {label,11}.
    {allocate,6,4}.
    {init_yregs,{list,[{y,0},{y,5}]}}.
    {move,{x,3},{y,1}}.
    {move,{x,2},{y,2}}.
    {move,{x,1},{y,3}}.
    {move,{x,0},{y,4}}.
    {move,{atom,'Elixir.AsmMe'},{x,0}}.
    {call_ext,1,{extfunc,'Elixir.ElixirScope.Capture.Switch','on?',1}}.
    {test,is_eq_exact,{f,12},[{x,0},{atom,false}]}.
    {line,[{location,"nofile",3}]}.
    {gc_bif,'+',{f,0},0,[{y,4},{y,3}],{x,0}}.
    {test_heap,4,1}.
    {put_tuple2,{x,0},{list,[{x,0},{y,2},{y,1}]}}.
    {deallocate,6}.
    return.
  {label,12}.
    {move,{y,2},{x,4}}.
    {move,{y,3},{x,3}}.
    {move,{y,4},{x,2}}.
    {move,{integer,2},{x,1}}.
    {move,{y,1},{x,5}}.
    {move,{atom,instrumented},{x,0}}.
    {line,[{scope,[3]},{location,"nofile",2}]}.
    {call,6,{f,18}}. % '-es-entry-'/6
    {test,is_eq_exact,{f,13},[{x,0},{atom,nil}]}.
    {move,{atom,nil},{y,0}}.
    {jump,{f,14}}.
  {label,13}.
    {move,{x,0},{y,0}}.
  {label,14}.
    {'try',{y,5},{f,15}}.
    {line,[{location,"nofile",3}]}.
    {gc_bif,'+',{f,0},0,[{y,4},{y,3}],{x,0}}.
    {try_end,{y,5}}.
    {test_heap,4,1}.
    {put_tuple2,{x,0},{list,[{x,0},{y,2},{y,1}]}}.
    {move,{x,0},{y,5}}.
    {jump,{f,16}}.
  {label,15}.
    {try_case,{y,5}}.
    {move,{x,1},{y,3}}.
    {move,{x,0},{y,4}}.
    {move,{x,2},{x,0}}.
    build_stacktrace.
    {move,{x,0},{x,4}}.
    {move,{y,0},{x,1}}.
    {move,{y,3},{x,3}}.
    {move,{y,4},{x,2}}.
    {init_yregs,{list,[{y,1},{y,2},{y,3},{y,4}]}}.
    {move,{atom,'Elixir.ElixirScope.Capture.InstrumentationRuntime'},{x,0}}.
    {line,[{location,"nofile",2}]}.
    {call_ext,5,{extfunc,'Elixir.ElixirScope.AST.InjectorHelpers',reraise,5}}.
    {move,{x,0},{y,5}}.
  {label,16}.
    {move,{y,5},{x,1}}.
    {move,{y,0},{x,0}}.
    {trim,5,1}.
    {line,[{scope,[0,1]},{location,"nofile",2}]}.
    {call,2,{f,20}}. % '-es-exit-'/2
    {move,{y,0},{x,0}}.
    {deallocate,1}.
    return.


{function, '-es-entry-', 6, 18}.
  {label,17}.
    {line,[]}.
    {func_info,{atom,'Elixir.AsmMe'},{atom,'-es-entry-'},6}.
  {label,18}.
    {'%',{var_info,{x,0},[{type,{t_atom,[instrumented]}}]}}.
    {'%',{var_info,{x,1},[{type,{t_integer,{2,2}}}]}}.
    {test_heap,8,6}.
    {put_list,{x,5},nil,{x,0}}.
    {put_list,{x,4},{x,0},{x,0}}.
    {put_list,{x,3},{x,0},{x,0}}.
    {put_list,{x,2},{x,0},{x,2}}.
    {move,{atom,instrumented},{x,1}}.
    {move,{integer,2},{x,3}}.
    {move,{atom,'Elixir.AsmMe'},{x,0}}.
    {call_ext_only,4,{extfunc,'Elixir.ElixirScope.NIF',emit_entry,4}}.


{function, '-es-exit-', 2, 20}.
  {label,19}.
    {line,[]}.
    {func_info,{atom,'Elixir.AsmMe'},{atom,'-es-exit-'},2}.
  {label,20}.
    {test,is_eq_exact,{f,21},[{x,0},{atom,nil}]}.
    {move,{atom,ok},{x,0}}.
    return.
  {label,21}.
    {call_ext_only,2,{extfunc,'Elixir.ElixirScope.NIF',emit_exit,2}}.


{function, module_info, 0, 23}.
  {label,22}.
    {line,[]}.
    {func_info,{atom,'Elixir.AsmMe'},{atom,module_info},0}.
  {label,23}.
    {move,{atom,'Elixir.AsmMe'},{x,0}}.
    {call_ext_only,1,{extfunc,erlang,get_module_info,1}}.


{function, module_info, 1, 25}.
  {label,24}.
    {line,[]}.
    {func_info,{atom,'Elixir.AsmMe'},{atom,module_info},1}.
  {label,25}.
    {move,{x,0},{x,1}}.
    {move,{atom,'Elixir.AsmMe'},{x,0}}.
    {call_ext_only,2,{extfunc,erlang,get_module_info,2}}.


{function, '-inlined-__info__/1-', 1, 27}.
  {label,26}.
    {line,[]}.
    {func_info,{atom,'Elixir.AsmMe'},{atom,'-inlined-__info__/1-'},1}.
  {label,27}.
    {jump,{f,26}}.
